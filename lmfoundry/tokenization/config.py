"""The recipe's ``tokenizer`` section: the byte-level BPE that ``lmfoundry tokenizer train`` builds."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenizerConfig:
    """How the tokenizer is trained; its val hold-out is ``tokenize.val_fraction`` (the shards' val split)."""

    vocab_size: int = field(default=8192, metadata={"alias": "--vocab-size"})
    """tokens in the vocabulary, special tokens included; rounded up to a multiple of 64"""
    extra_special_tokens: list[str] = field(default_factory=list, metadata={"alias": "--special-tokens"})
    """special tokens beyond <|endoftext|> and <|pad|>: presets 'chat' (ChatML) and 'fim', or literal <|name|> tokens"""
    min_frequency: int = 2
    """minimum count of a pair for it to become a merge"""
    max_bytes: int | None = None
    """stop reading training text after this many UTF-8 bytes (default: read everything)"""
    text_field: str = field(default="text", metadata={"alias": "--text-field"})
    """jsonl/parquet field holding the text"""
