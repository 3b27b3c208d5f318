"""A resumed run must be the run it continues: the fields that change results must not change.

Checked when training resumes from a checkpoint: the ``model`` and ``train`` sections as the run
recorded them (``RUN/train/recipe.yaml``, normalised: defaults filled in, vocabulary from the
tokenizer) against the ones it is resumed with. A field that would change what the remaining steps
compute (the model, the data, the tokenizer, the optimizer, the lr schedule, the seed, the batch)
stops the resume with a field-by-field diff; ``--force-recipe-change`` is the explicit escape.
Fields that only change how the run is watched, or that extend it, are allowed and logged.
"""

from __future__ import annotations

from typing import Any

# train fields a resumed run may change: how often it logs, validates, samples, checkpoints, where it reports
SAFE_FIELDS = {
    "log_every", "eval_every", "eval_batches", "sample_every", "sample_prompts", "sample_max_new_tokens",
    "checkpoint_every", "keep_last", "report_to", "verify_checksums", "spike_max_rollbacks",
}
# train fields a resumed run may raise (a longer run), but not lower below what it recorded
UPWARD_FIELDS = ("max_steps", "max_tokens", "max_time")


def recipe_changes(recorded: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]
                   ) -> tuple[list[str], list[str]]:
    """``(refused, allowed)``: one ``section.field: old -> new`` line per changed field."""
    refused: list[str] = []
    allowed: list[str] = []
    for section in ("model", "train"):
        old, new = recorded.get(section) or {}, current.get(section) or {}
        for name in sorted(set(old) | set(new)):
            before, after = old.get(name), new.get(name)
            if before == after:
                continue
            line = f"{section}.{name}: {before!r} -> {after!r}"
            if section == "train" and (name in SAFE_FIELDS or (name in UPWARD_FIELDS and _not_lower(before, after))):
                allowed.append(line)
            else:
                refused.append(line)
    return refused, allowed


def _not_lower(before: Any, after: Any) -> bool:
    if before is None or after is None:
        return before is None and after is None
    if isinstance(before, str) or isinstance(after, str):  # max_time: compare as durations
        from lmfoundry.training.budget import parse_duration

        return parse_duration(after) >= parse_duration(before)
    return after >= before


def check_resume_recipe(recorded: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]], where: str,
                        force: bool) -> list[str]:
    """Refuse a resume whose recipe changes results (unless ``force``); return the allowed changes to log."""
    refused, allowed = recipe_changes(recorded, current)
    if refused and not force:
        raise ValueError(
            f"{where}: resuming with a recipe that changes results: {'; '.join(refused)} (expected the recorded "
            "values; start a new run folder, or pass --force-recipe-change to continue anyway)"
        )
    return allowed + [f"{line} (forced)" for line in refused]
