"""Stock lm-eval-harness tasks pointed at local files, so the reference harness runs offline on the
same data as lmfoundry.

Each config ``include``s lm-eval's own task YAML (its prompt, shots, stops, filters and metrics,
unchanged) and overrides only where the data comes from: ``dataset_path: json`` with
``dataset_kwargs.data_files``, read by ``datasets`` from local files. The task keeps its stock name
(``gsm8k``, ``mmlu_astronomy``, ...). Used by ``benchmarks/crosscheck_lm_eval.py`` and the tests::

    write_stock_task("gsm8k", {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}, "tasks")
    lm_eval --model hf --model_args pretrained=MODEL --include_path tasks --tasks gsm8k
    # (TaskManager(include_path="tasks", include_defaults=False) in Python)
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lmfoundry.eval.tasks.mmlu import read_local_split

# our task name -> the stock YAML that defines it, relative to lm_eval/tasks
STOCK_YAMLS = {
    "gsm8k": "gsm8k/gsm8k.yaml",
    "gsm8k_cot": "gsm8k/gsm8k-cot.yaml",
    "humaneval": "humaneval/humaneval.yaml",
    "pile_10k": "pile_10k/pile_10k.yaml",  # rolling log-likelihood of a plain ``text`` field
}


def lm_eval_tasks_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


def stock_yaml(task: str) -> Path:
    """The installed lm-eval YAML of ``task`` (``mmlu_<subject>`` or one of :data:`STOCK_YAMLS`)."""
    relative = f"mmlu/default/{task}.yaml" if task.startswith("mmlu_") else STOCK_YAMLS.get(task)
    path = lm_eval_tasks_dir() / relative if relative else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"lm-eval has no stock task {task!r} here (looked for {path})")
    return path


def write_stock_task(task: str, data_files: dict[str, str | Path], output_dir: str | Path) -> Path:
    """Write ``output_dir/<task>.yaml``: the stock task reading ``data_files`` (split -> file)."""
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "include": str(stock_yaml(task)),
        "task": task,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {s: str(Path(f).resolve()) for s, f in data_files.items()}},
    }
    path = output_dir / f"{task}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_mmlu_tasks(data_dir: str | Path, output_dir: str | Path) -> list[str]:
    """Stock ``mmlu_<subject>`` tasks for every subject of ``data_dir/mmlu`` (Hendrycks CSVs,
    converted to JSON lines with lm-eval's fields). Returns the task names."""
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    splits = {split: read_local_split(Path(data_dir), split) for split in ("dev", "test")}
    names = []
    for subject, docs in splits["test"].items():
        files = {}
        for split in ("dev", "test"):
            files[split] = output_dir / f"{subject}_{split}.jsonl"
            rows = docs if split == "test" else splits["dev"].get(subject, [])
            files[split].write_text("".join(json.dumps({**d, "subject": subject}) + "\n" for d in rows))
        names.append(write_stock_task(f"mmlu_{subject}", files, output_dir).stem)
    return names
