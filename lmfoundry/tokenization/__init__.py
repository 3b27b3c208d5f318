"""Tokenizer training (byte-level BPE), its fingerprint, and fast bulk encoding for the data stage.

Names are imported on first use, so importing the package (and its cli) stays cheap.
"""

from __future__ import annotations

from lmfoundry.lazy import lazy_exports

_EXPORTS = {
    "tokenizer_fingerprint": "lmfoundry.tokenization.fingerprint",
    "tokenizer_report": "lmfoundry.tokenization.report",
    "EOS_TOKEN": "lmfoundry.tokenization.train",
    "PAD_TOKEN": "lmfoundry.tokenization.train",
    "SPECIAL_TOKEN_PRESETS": "lmfoundry.tokenization.train",
    "special_token_ids": "lmfoundry.tokenization.train",
    "train_tokenizer": "lmfoundry.tokenization.train",
    "TokenizerConfig": "lmfoundry.tokenization.config",
    "build_tokenizer": "lmfoundry.tokenization.stage",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
