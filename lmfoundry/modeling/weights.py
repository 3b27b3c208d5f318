"""Check that a folder's safetensors weights are whole before anything loads or uploads them.

A truncated ``model.safetensors`` (a copy cut short, a disk that filled during an export) makes the
safetensors reader fail deep inside ``from_pretrained`` with a message that names no file, and
``push`` would upload it as it is. The format is an 8-byte header length, a JSON header giving each
tensor's byte range, then the bytes: reading the header alone tells whether the file holds them all.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path


def check_safetensors(path: str | Path) -> None:
    """Raise ``ValueError`` naming ``path`` when it is not a whole safetensors file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        header = f.read(length) if 0 <= length <= size - 8 else b""
    try:
        tensors = json.loads(header) if header else None
    except ValueError:
        tensors = None
    if not isinstance(tensors, dict):
        raise ValueError(f"{path}: truncated or corrupt safetensors file (its header is cut short or not JSON) "
                         "(expected whole weights: save or copy the model again)")
    needed = max((entry["data_offsets"][1] for name, entry in tensors.items() if name != "__metadata__"), default=0)
    held = size - 8 - length
    if held < needed:
        raise ValueError(f"{path}: truncated safetensors file ({held:,} of {needed:,} bytes of tensors) "
                         "(expected whole weights: save or copy the model again)")


def check_weights(folder: str | Path) -> None:
    """Check every ``*.safetensors`` file directly in ``folder`` (a missing folder is left to the loader)."""
    for path in sorted(Path(folder).glob("*.safetensors")):
        check_safetensors(path)
