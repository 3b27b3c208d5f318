"""lm-eval-harness task configs for a local MMLU copy, so the reference harness runs offline too.

Each subject becomes a task that ``include``s lm-eval's own ``mmlu`` template (its prompt, choices
and metric, unchanged) and only swaps the Hub dataset for JSON files converted from the Hendrycks
CSVs. Used by ``benchmarks/crosscheck_lm_eval.py`` and the tests to compare our MMLU with lm-eval's::

    names = write_mmlu_tasks("data", "lm_eval_tasks")
    lm_eval --model hf --model_args pretrained=MODEL,trust_remote_code=True \\
        --include_path lm_eval_tasks --tasks lmfoundry_mmlu --num_fewshot 5
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lmfoundry.eval.tasks.mmlu import read_local_split

GROUP = "lmfoundry_mmlu"


def lm_eval_mmlu_template() -> Path:
    import lm_eval

    path = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default" / "_default_template_yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: this lm-eval version has no default mmlu template")
    return path


def write_mmlu_tasks(data_dir: str | Path, output_dir: str | Path) -> list[str]:
    """Write one lm-eval task per subject of ``data_dir/mmlu`` plus a group ``lmfoundry_mmlu``.

    Returns the subject task names. Pass ``output_dir`` as lm-eval's ``--include_path``.
    """
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    splits = {split: read_local_split(Path(data_dir), split) for split in ("dev", "test")}
    template = str(lm_eval_mmlu_template())
    names = []
    for subject, docs in splits["test"].items():
        files = {}
        for split in ("dev", "test"):
            files[split] = str(output_dir / f"{subject}_{split}.jsonl")
            rows = docs if split == "test" else splits["dev"].get(subject, [])
            Path(files[split]).write_text("".join(json.dumps({**d, "subject": subject}) + "\n" for d in rows))
        name = f"{GROUP}_{subject}"
        config = {
            "include": template,
            "task": name,
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": files},
            "description": f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n",
        }
        (output_dir / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        names.append(name)
    group = {
        "group": GROUP,
        "task": names,
        "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}],
    }
    (output_dir / f"{GROUP}.yaml").write_text(yaml.safe_dump(group, sort_keys=False))
    return names
