"""The life of a shards folder, whichever scheduler tokenized it: skip, refuse, clear, publish.

Both schedulers stage their shards in a hidden folder (``.partial/`` for the local one,
``.tokenize/`` for datatrove tasks) and :func:`publish` moves them into place and writes
``manifest.json`` last, so a folder with a manifest is complete and one without never looks it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.shards.format import MANIFEST, SPLITS, make_manifest, read_manifest

logger = logging.getLogger(__name__)

# settings that manifests written before they existed did not record, with the value they implied
IMPLIED_SETTINGS = {"val_method": "documents"}


def source_list(files: list[Path]) -> list[dict[str, Any]]:
    """The manifest's ``sources``: what a rerun compares to decide whether the inputs changed."""
    return [{"path": str(p), "bytes": p.stat().st_size} for p in files]


def complete_and_current(
    output_dir: Path, fingerprint: str, sources: list[dict], settings: dict, overwrite: bool
) -> bool:
    """True when ``output_dir`` already holds exactly what this call would write (so: nothing to do)."""
    if not (output_dir / MANIFEST).is_file():
        return False
    old = read_manifest(output_dir)
    same_tokenizer = old["tokenizer_fingerprint"] == fingerprint
    same_inputs = old.get("sources") == sources and all(
        old.get(k, IMPLIED_SETTINGS.get(k)) == v for k, v in settings.items()
    )
    if same_tokenizer and same_inputs and not overwrite:
        logger.info("%s is complete for this tokenizer and these inputs; nothing to do", output_dir)
        return True
    if not overwrite:
        what = "a different tokenizer" if not same_tokenizer else "different inputs or settings"
        raise FileExistsError(
            f"{output_dir / MANIFEST}: shards were made with {what}; pass --overwrite to replace them"
        )
    return False


def publish(
    output_dir: Path, staging: Path, records: list[dict[str, Any]], inputs: str, **fields: Any
) -> dict[str, Any]:
    """Move the staged split folders into ``output_dir`` (replacing any older shards there), drop
    ``staging``, and write the manifest last.

    ``fields`` go to :func:`~lmfoundry.data.shards.format.make_manifest`; shards are listed split by split
    in name order. A corpus without training documents is an error naming ``inputs``.
    """
    manifest = make_manifest(sorted(records, key=lambda r: (SPLITS.index(r["split"]), r["path"])), **fields)
    summaries = manifest["splits"]
    if summaries["train"]["documents"] == 0:
        shutil.rmtree(staging)
        raise ValueError(f"no training documents in {inputs} (all empty or all in val)")
    if manifest.get("val_fraction", 0) > 0 and summaries["val"]["documents"] == 0:
        logger.warning(
            "val_fraction=%g (val_method %s) put no text in val (%d documents in all): "
            "use val_method tail or raise val_fraction for a validation split",
            manifest["val_fraction"],
            manifest.get("val_method", "documents"),
            summaries["train"]["documents"],
        )
    (output_dir / MANIFEST).unlink(missing_ok=True)  # shards made before this run, if any, go first
    for split in SPLITS:
        shutil.rmtree(output_dir / split, ignore_errors=True)
        if (staging / split).is_dir():
            os.replace(staging / split, output_dir / split)
    shutil.rmtree(staging)
    write_json_atomic(output_dir / MANIFEST, manifest)
    return manifest
