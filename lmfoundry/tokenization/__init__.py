"""Tokenizer training (byte-level BPE), its fingerprint, and fast bulk encoding for the data stage."""

from lmfoundry.tokenization.fingerprint import tokenizer_fingerprint
from lmfoundry.tokenization.report import tokenizer_report
from lmfoundry.tokenization.train import (
    EOS_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKEN_PRESETS,
    special_token_ids,
    train_tokenizer,
)

__all__ = [
    "EOS_TOKEN",
    "PAD_TOKEN",
    "SPECIAL_TOKEN_PRESETS",
    "special_token_ids",
    "tokenizer_fingerprint",
    "tokenizer_report",
    "train_tokenizer",
]
