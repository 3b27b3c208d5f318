"""A tokenizer's identity: sha256 of the parts of ``tokenizer.json`` that decide the ids.

Token shards record this fingerprint and the training data loader checks it, so a model is never
trained on ids from a different tokenizer than the one shipped with it. Only the pipeline and
vocabulary count (normalizer, pre-tokenizer, model, added tokens, post-processor, decoder), serialized
canonically, so re-saving the same tokenizer, or enabling padding at runtime, keeps the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

_IDENTITY_KEYS = ("added_tokens", "normalizer", "pre_tokenizer", "model", "post_processor", "decoder")


def tokenizer_fingerprint(tokenizer: str | Path | PreTrainedTokenizerBase | Tokenizer) -> str:
    """sha256 hex digest of the canonical ``tokenizer.json`` of a folder, file or tokenizer object."""
    if isinstance(tokenizer, (str, Path)):
        path = Path(tokenizer)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {path}")
        text = path.read_text(encoding="utf-8")
    elif isinstance(tokenizer, Tokenizer):
        text = tokenizer.to_str()
    elif hasattr(tokenizer, "backend_tokenizer"):
        text = tokenizer.backend_tokenizer.to_str()
    else:
        raise ValueError(
            f"cannot fingerprint a {type(tokenizer).__name__}: expected a folder or a fast tokenizer"
        )
    data = json.loads(text)
    identity = {key: data.get(key) for key in _IDENTITY_KEYS}
    canonical = json.dumps(identity, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
