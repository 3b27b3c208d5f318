"""Push an exported model (weights, tokenizer, modeling code, generation config, card) to the Hub.

Everything that can be wrong with the input is checked before the first request: the repo id,
the token, and the folder (safetensors weights, a tokenizer, the modeling files ``auto_map``
names). A push that fails half-way through leaves the user's repository as it was, because
``upload_folder`` makes a single commit. The token is handed to ``huggingface_hub`` and never
printed or logged.
"""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import HFValidationError, validate_repo_id

from lmfoundry.atomic import write_text_atomic
from lmfoundry.hub.artifacts import locate_model_dir
from lmfoundry.hub.card import is_generated_card, write_model_card
from lmfoundry.hub.config import HubConfig
from lmfoundry.locks import output_lock
from lmfoundry.modeling.weights import check_weights

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja")
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors.index.json", "README.md", "loss_curve.png")


def push_to_hub(path: str | Path, config: HubConfig, *, token: str | None = None) -> str:
    """Upload the model in ``path`` (a run folder or a model folder) as ``config`` says; return the commit URL.

    The model card is (re)written first when the folder has none or has one lmfoundry generated;
    a hand-written ``README.md`` is uploaded as it is. ``token`` defaults to ``HF_TOKEN`` or the
    token saved by ``hf auth login``. ``path`` is locked while the card is written and uploaded
    (:func:`lmfoundry.locks.output_lock`; a missing folder is reported, not created).
    """
    with output_lock(path, "push_to_hub", create=False):
        return _push(path, config, token)


def _push(path: str | Path, config: HubConfig, token: str | None) -> str:
    repo_id = config.repo_id or ""
    check_repo_id(repo_id)
    token = token or get_token()
    if not token:
        raise PermissionError(
            "no Hugging Face token: set the HF_TOKEN environment variable or run `hf auth login` "
            "(a token with write access, from https://huggingface.co/settings/tokens)"
        )
    model_dir, files = prepare_upload(path, repo_id, license=config.license)

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=config.private, exist_ok=True)
        logger.info("pushing %d files from %s to %s", len(files), model_dir, url)
        if config.revision:
            api.create_branch(repo_id, branch=config.revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=model_dir,
            revision=config.revision,
            commit_message=config.commit_message or f"Upload {model_dir.name} with lmfoundry",
            allow_patterns=[glob.escape(name) for name in files],
            # Stale weight shards of an earlier push would otherwise linger next to the new ones.
            delete_patterns=["*.safetensors", "*.safetensors.index.json"],
        )
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            raise PermissionError(f"the Hub refused the token for {repo_id} (HTTP {status}): it needs write access "
                                  "to this namespace") from None
        raise
    logger.info("pushed: %s", commit.commit_url)
    return commit.commit_url


def prepare_upload(path: str | Path, repo_id: str, *, license: str = "apache-2.0") -> tuple[Path, list[str]]:
    """Check the folder and write what the upload needs; return ``(model_dir, files to upload)``.

    Writes ``generation_config.json`` when missing and the model card (plus ``loss_curve.png``)
    unless the folder holds a hand-written ``README.md``. No network: ``lmfoundry push --dry-run``.
    ``path`` is locked while those are written.
    """
    check_repo_id(repo_id)
    with output_lock(path, "push_to_hub", create=False):
        model_dir, run_dir = locate_model_dir(path)
        files = select_upload_files(model_dir)
        if "generation_config.json" not in files:
            write_generation_config(model_dir)
        card = model_dir / "README.md"
        if not card.exists() or is_generated_card(card):
            write_model_card(model_dir, run_dir, repo_id=repo_id, license=license)
        return model_dir, select_upload_files(model_dir)


def check_repo_id(repo_id: str) -> None:
    """A repo id is ``namespace/name`` with the Hub's allowed characters."""
    if repo_id.count("/") != 1:
        raise ValueError(f"invalid repo id {repo_id!r}: expected 'namespace/name', e.g. 'your-username/my-model'")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"invalid repo id {repo_id!r}: {err}") from None


def select_upload_files(model_dir: Path) -> list[str]:
    """The top-level files of ``model_dir`` that make up the model, after checking it is complete.

    Raises ``FileNotFoundError``/``ValueError`` naming what is missing: safetensors weights (``.bin``
    weights alone are refused), a tokenizer, or a modeling file named in ``config.json``'s ``auto_map``.
    """
    config_path = model_dir / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path}: not valid JSON ({err})") from None
    weights = sorted(p.name for p in model_dir.glob("*.safetensors"))
    if not weights:
        legacy = sorted(p.name for p in model_dir.glob("*.bin")) + sorted(p.name for p in model_dir.glob("*.pt"))
        if legacy:
            raise ValueError(
                f"{model_dir}: only PyTorch pickle weights ({', '.join(legacy)}); lmfoundry pushes safetensors "
                "only: load the model and save it again with save_pretrained() (safetensors is the default)"
            )
        raise FileNotFoundError(f"{model_dir}: no model weights (*.safetensors)")
    check_weights(model_dir)  # a truncated file is refused here, never uploaded
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        missing = sorted(shards - set(weights))
        if missing:
            raise FileNotFoundError(f"{index}: lists weight shards that are missing: {', '.join(missing)}")
    if not (model_dir / "tokenizer.json").is_file() and not (model_dir / "tokenizer_config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir}: no tokenizer (tokenizer.json / tokenizer_config.json): save it next to the model "
            "with tokenizer.save_pretrained(model_dir)"
        )
    # "module.Class" lives in this folder; "owner/repo--module.Class" in another repo on the Hub.
    code = sorted({ref.split(".")[0] + ".py" for ref in _auto_map_refs(config) if "--" not in ref})
    missing_code = [name for name in code if not (model_dir / name).is_file()]
    if missing_code:
        raise FileNotFoundError(
            f"{config_path}: auto_map refers to {', '.join(missing_code)}, which is not in {model_dir}"
        )
    extra = [name for name in (*MODEL_FILES, *TOKENIZER_FILES) if (model_dir / name).is_file()]
    return sorted(set(weights + code + extra))


def _auto_map_refs(config: dict) -> list[str]:
    refs = []
    for value in (config.get("auto_map") or {}).values():
        refs += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    return refs


def write_generation_config(model_dir: Path) -> None:
    """A ``generation_config.json`` with the special token ids, so ``generate`` stops at EOS."""
    from transformers import GenerationConfig

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    ids = {key: config.get(key) for key in ("bos_token_id", "eos_token_id", "pad_token_id")}
    write_text_atomic(model_dir / "generation_config.json", GenerationConfig(**ids).to_json_string())
    logger.info("wrote %s", model_dir / "generation_config.json")
