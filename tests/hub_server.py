"""A local, in-process stand-in for the Hugging Face Hub HTTP API, for offline tests.

It implements just the endpoints that ``huggingface_hub`` 1.x/2.x calls for ``create_repo``,
``upload_folder``/``create_commit`` (preupload + ndjson commit, every file "regular" so no LFS or
Xet storage is involved), ``create_branch``, ``model_info``/``list_repo_tree`` and ``hf_hub_download``
(HEAD/GET on ``/{repo}/resolve/{revision}/{path}`` with ``X-Repo-Commit``, ``ETag`` and
``X-Error-Code`` headers), which is what ``AutoModelForCausalLM.from_pretrained(repo_id)``,
``AutoTokenizer`` and ``pipeline(model=repo_id)`` need. Storage is git-like: content-addressed
blobs on disk, immutable commits (path -> blob id) and branches pointing at commits, so a file
can be resolved by branch name or by commit hash exactly as on the real Hub.

Point a client at it with ``HF_ENDPOINT=server.url`` (read at import time by huggingface_hub, so
set it in the environment of a fresh subprocess). Xet needs no disabling: the server answers every
preupload with "regular", so no file is ever sent to Xet or LFS storage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


def git_blob_id(data: bytes) -> str:
    """The git SHA-1 of a blob: what the Hub reports as a regular file's ``oid``/``ETag``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    private: bool
    commits: dict[str, dict[str, str]] = field(default_factory=dict)  # commit id -> {path: blob id}
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit id


class HubError(Exception):
    """An HTTP error answer, with the ``X-Error-Code`` the Hub would send."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class LocalHub:
    """The Hub's state plus a threaded HTTP server; use as a context manager."""

    def __init__(self, storage: Path, token: str | None = None):
        self.storage = Path(storage)
        (self.storage / "blobs").mkdir(parents=True, exist_ok=True)
        self.token = token  # when set, writes need ``Authorization: Bearer <token>``
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request received
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- storage -------------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        blob = git_blob_id(data)
        path = self.storage / "blobs" / blob
        if not path.exists():
            path.write_bytes(data)
        return blob

    def blob(self, blob: str) -> bytes:
        return (self.storage / "blobs" / blob).read_bytes()

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """All files of ``repo_id`` at ``revision`` (for assertions in tests)."""
        _, tree = self.snapshot(repo_id, revision)
        return {path: self.blob(blob) for path, blob in tree.items()}

    def repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return self.repos[repo_id]

    def snapshot(self, repo_id: str, revision: str) -> tuple[str, dict[str, str]]:
        repo = self.repo(repo_id)
        commit = repo.branches.get(revision, revision)
        if commit not in repo.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit, repo.commits[commit]

    def commit(self, repo_id: str, branch: str, tree: dict[str, str], message: str) -> str:
        repo = self.repo(repo_id)
        parent = repo.branches.get(branch, "")
        commit = hashlib.sha1(json.dumps([parent, sorted(tree.items()), message]).encode()).hexdigest()
        repo.commits[commit] = dict(tree)
        repo.branches[branch] = commit
        return commit


def _make_handler(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # keep test output quiet
            pass

        # ---- plumbing ----------------------------------------------------------------------------
        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            with hub.lock:
                hub.requests.append((method, url.path))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                with hub.lock:
                    self._route(method, [unquote(p) for p in url.path.strip("/").split("/")], body, url)
            except HubError as err:
                headers = {"X-Error-Code": err.code} if err.code else {}
                self._send_json(err.status, {"error": err.message}, headers)

        def do_GET(self):
            self._dispatch("GET")

        def do_HEAD(self):
            self._dispatch("HEAD")

        def do_POST(self):
            self._dispatch("POST")

        def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _send_json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization", "")
            return auth.startswith("Bearer ") and (hub.token is None or auth == f"Bearer {hub.token}")

        def _require_write_auth(self) -> None:
            if not self._authorized():
                raise HubError(401, "Invalid credentials in Authorization header")

        def _readable(self, repo_id: str) -> None:
            """A private repo is invisible without the token: the Hub answers 401 RepoNotFound."""
            if hub.repo(repo_id).private and not self._authorized():
                raise HubError(401, f"Repository {repo_id} not found", "RepoNotFound")

        # ---- routes ------------------------------------------------------------------------------
        def _route(self, method: str, parts: list[str], body: bytes, url) -> None:
            if method == "POST" and parts == ["api", "repos", "create"]:
                return self._create_repo(json.loads(body))
            if method == "POST" and parts == ["api", "validate-yaml"]:
                return self._validate_yaml(json.loads(body))
            if method == "GET" and parts == ["api", "agent-harnesses"]:  # huggingface_hub's user-agent registry
                return self._send_json(200, {"standardEnvVars": [], "harnesses": {}})
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id, rest = f"{parts[2]}/{parts[3]}", parts[4:]
                if method == "POST" and rest[:1] == ["preupload"]:
                    return self._preupload(repo_id, rest[1], json.loads(body))
                if method == "POST" and rest[:1] == ["commit"]:
                    return self._commit(repo_id, rest[1], body)
                if method == "POST" and rest[:1] == ["branch"]:
                    return self._create_branch(repo_id, rest[1], json.loads(body or b"{}"))
                if method == "GET" and rest[:1] in ([], ["revision"]):
                    return self._model_info(repo_id, rest[1] if rest else "main")
                if method == "GET" and rest[:1] == ["tree"]:
                    recursive = parse_qs(url.query).get("recursive", ["false"])[0].lower() in ("1", "true")
                    return self._tree(repo_id, rest[1], "/".join(rest[2:]), recursive)
            if method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            raise HubError(404, f"no such endpoint: {method} {self.path}")

        def _create_repo(self, payload: dict) -> None:
            self._require_write_auth()
            if payload.get("type", "model") not in (None, "model"):
                raise HubError(400, "only model repositories are supported by this test server")
            repo_id = f"{payload['organization']}/{payload['name']}"
            if repo_id in hub.repos:  # the Hub's 409 still names the repo (create_repo(exist_ok=True) reads it)
                return self._send_json(409, {"error": "You already created this model repo",
                                             "url": f"{hub.url}/{repo_id}"})
            hub.repos[repo_id] = Repo(private=payload.get("visibility") == "private")
            hub.commit(repo_id, "main", {".gitattributes": hub.put_blob(b"*.safetensors filter=lfs\n")}, "initial commit")
            self._send_json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

        def _validate_yaml(self, payload: dict) -> None:
            content = payload.get("content", "")
            errors = []
            if content.startswith("---"):
                try:
                    yaml.safe_load(content.split("---")[1])
                except yaml.YAMLError as err:
                    errors.append({"message": f"invalid YAML: {err}"})
            self._send_json(400 if errors else 200, {"errors": errors, "warnings": []})

        def _preupload(self, repo_id: str, revision: str, payload: dict) -> None:
            self._require_write_auth()
            repo = hub.repo(repo_id)
            tree = repo.commits[repo.branches[revision]] if revision in repo.branches else {}
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": tree.get(f["path"])}
                for f in payload["files"]
            ]
            self._send_json(200, {"files": files, "commitOid": repo.branches.get(revision)})

        def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
            self._require_write_auth()
            repo = hub.repo(repo_id)
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            tree = dict(repo.commits[repo.branches[revision]])
            summary = ""
            for line in body.splitlines():
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    summary = value["summary"]
                elif key == "file":
                    tree[value["path"]] = hub.put_blob(base64.b64decode(value["content"]))
                elif key == "deletedFile":
                    tree.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    tree = {p: b for p, b in tree.items() if not p.startswith(prefix)}
                else:
                    raise HubError(400, f"unsupported commit operation {key!r} (no LFS on this server)")
            commit = hub.commit(repo_id, revision, tree, summary)
            self._send_json(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{commit}", "commitOid": commit,
                                  "success": True})

        def _create_branch(self, repo_id: str, branch: str, payload: dict) -> None:
            self._require_write_auth()
            repo = hub.repo(repo_id)
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start, _ = hub.snapshot(repo_id, payload.get("startingPoint") or "main")
            repo.branches[branch] = start
            self._send_json(200, {})

        def _model_info(self, repo_id: str, revision: str) -> None:
            self._readable(repo_id)
            commit, tree = hub.snapshot(repo_id, revision)
            self._send_json(200, {
                "id": repo_id, "modelId": repo_id, "sha": commit, "private": hub.repos[repo_id].private,
                "siblings": [{"rfilename": path} for path in sorted(tree)], "tags": [], "downloads": 0,
            })

        def _tree(self, repo_id: str, revision: str, folder: str, recursive: bool) -> None:
            self._readable(repo_id)
            _, tree = hub.snapshot(repo_id, revision)
            prefix = folder.rstrip("/") + "/" if folder else ""
            entries, folders = [], set()
            for path, blob in sorted(tree.items()):
                if not path.startswith(prefix):
                    continue
                rest = path[len(prefix):]
                if "/" in rest and not recursive:
                    folders.add(prefix + rest.split("/")[0])
                    continue
                entries.append({"type": "file", "path": path, "oid": blob, "size": len(hub.blob(blob))})
            if folder and not entries and not folders:
                raise HubError(404, f"{folder} does not exist on {revision}", "EntryNotFound")
            entries += [{"type": "directory", "path": f, "oid": "0" * 40, "size": 0} for f in sorted(folders)]
            self._send_json(200, entries)

        def _resolve(self, repo_id: str, revision: str, path: str) -> None:
            self._readable(repo_id)
            commit, tree = hub.snapshot(repo_id, revision)
            if path not in tree:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            blob = tree[path]
            self._send(200, hub.blob(blob), {
                "Content-Type": "application/octet-stream", "X-Repo-Commit": commit, "ETag": f'"{blob}"',
            })

    return Handler
