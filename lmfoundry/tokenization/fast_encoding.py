"""Bulk document encoding for the data stage: tiktoken when it reproduces our tokenizer, else tokenizers.

A byte-level BPE whose token ids follow merge order is exactly what tiktoken implements: its ranks are
the token ids (with each token mapped back from the printable byte alphabet to raw bytes), its
``pat_str`` is our pre-tokenization regex, and it short-circuits a pre-token that is itself in the
vocabulary, as our ``BPE(ignore_merges=True)`` does. tiktoken encodes the same text several times
faster than ``tokenizers``, so the shard writer uses it, but only after checking, on a sample of the
corpus plus hard cases (scripts, emoji, code, whitespace runs), that both produce identical ids. A
tokenizer tiktoken cannot express (a normalizer, another pre-tokenizer, non-special added tokens) or
one that fails the parity check falls back to ``tokenizers``, with a warning.

Documents are always encoded as ordinary text: the literal string ``<|endoftext|>`` inside a document
becomes ordinary tokens, so only the shard writer places document separators.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import tiktoken
from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

# Hard cases every parity check includes, whatever the corpus sample holds.
PARITY_PROBES = [
    "Hello, world! It's 2024: we've got 1234567 tokens, don't we?",
    "Ünïcödé façade naïve café “quotes” — dashes… 数据集和语言模型训练。日本語のテキスト。Привет, мир! مرحبا",
    "👩‍👩‍👧 🙂🚀🏳️‍🌈 e\u0301 \u200b zero\u00a0width",
    "def f(x):\n\treturn x ** 2  # square\n\n\n    if a != b:\r\n        pass\r\n",
    "   leading and trailing   \n\n\n\t\t  ",
    "<|endoftext|> literal <|pad|> special text<|endoftext|>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ............ ------------ 000000000000",
]


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: printable character -> the byte it stands for."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def build_tiktoken_encoding(tokenizer_json: str | Path, name: str = "lmfoundry") -> tiktoken.Encoding:
    """A tiktoken ``Encoding`` equivalent to the byte-level BPE in ``tokenizer_json``.

    Raises ``ValueError`` naming the feature when the tokenizer uses something tiktoken cannot express.
    """
    path = Path(tokenizer_json)
    if path.is_dir():
        path = path / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(f"{path}: model is {model.get('type')}, tiktoken needs BPE")
    if data.get("normalizer") is not None:
        raise ValueError(f"{path}: tiktoken cannot apply a normalizer ({data['normalizer'].get('type')})")
    for option in ("byte_fallback", "continuing_subword_prefix", "end_of_word_suffix", "dropout"):
        if model.get(option):
            raise ValueError(f"{path}: tiktoken cannot express BPE option {option}")
    pattern = _split_pattern(data.get("pre_tokenizer"), path)
    byte_of = _byte_decoder()
    ranks: dict[bytes, int] = {}
    for token, rank in model["vocab"].items():
        try:
            raw = bytes(byte_of[ch] for ch in token)
        except KeyError:
            raise ValueError(f"{path}: token {token!r} is not in the byte-level alphabet") from None
        if raw in ranks:
            raise ValueError(f"{path}: two tokens decode to the same bytes {raw!r}")
        ranks[raw] = rank
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(f"{path}: {len(missing)} single bytes are missing from the vocabulary")
    specials = {}
    for added in data.get("added_tokens", []):
        if not added.get("special"):
            raise ValueError(
                f"{path}: non-special added token {added['content']!r} has no tiktoken equivalent"
            )
        specials[added["content"]] = added["id"]
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)


def _split_pattern(pre_tokenizer: dict | None, path: Path) -> str:
    """The regex of ``Split(regex, isolated) + ByteLevel(use_regex=False)``, or GPT-2's ``ByteLevel``."""
    gpt2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    if pre_tokenizer is None:
        raise ValueError(f"{path}: no pre-tokenizer; tiktoken needs a byte-level one")
    if pre_tokenizer.get("type") == "ByteLevel" and pre_tokenizer.get("use_regex", True):
        if pre_tokenizer.get("add_prefix_space"):
            raise ValueError(f"{path}: tiktoken cannot add a prefix space")
        return gpt2
    steps = pre_tokenizer.get("pretokenizers", []) if pre_tokenizer.get("type") == "Sequence" else []
    if (
        len(steps) == 2
        and steps[0].get("type") == "Split"
        and "Regex" in steps[0].get("pattern", {})
        and steps[0].get("behavior") == "Isolated"
        and not steps[0].get("invert")
        and steps[1].get("type") == "ByteLevel"
        and not steps[1].get("use_regex", True)
        and not steps[1].get("add_prefix_space")
    ):
        return steps[0]["pattern"]["Regex"]
    raise ValueError(f"{path}: pre-tokenizer {json.dumps(pre_tokenizer)[:200]} has no tiktoken equivalent")


class DocumentEncoder:
    """Encodes documents as ordinary text (special-token text included) into uint32 id arrays.

    Picklable by construction: it holds only the tokenizer path and which backend to use, and builds
    the backend lazily in whichever process calls :meth:`encode`.
    """

    def __init__(self, tokenizer_path: str | Path, backend: str):
        if backend not in ("tiktoken", "tokenizers"):
            raise ValueError(f"unknown encoder backend {backend!r}")
        path = Path(tokenizer_path)
        self.tokenizer_json = path / "tokenizer.json" if path.is_dir() else path
        self.backend = backend
        self._impl = None

    def __getstate__(self) -> dict:
        return {"tokenizer_json": self.tokenizer_json, "backend": self.backend, "_impl": None}

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text, as uint32 arrays."""
        if self._impl is None:
            if self.backend == "tiktoken":
                core = build_tiktoken_encoding(self.tokenizer_json)._core_bpe
                self._impl = lambda batch: [
                    np.frombuffer(core.encode_to_tiktoken_buffer(t, set()), dtype=np.uint32) for t in batch
                ]
            else:
                tokenizer = Tokenizer.from_file(str(self.tokenizer_json))
                tokenizer.encode_special_tokens = True  # special-token text is ordinary text here
                self._impl = lambda batch: [
                    np.asarray(e.ids, dtype=np.uint32)
                    for e in tokenizer.encode_batch(batch, add_special_tokens=False)
                ]
        return self._impl(texts)


def choose_encoder(tokenizer_path: str | Path, sample: Iterable[str]) -> DocumentEncoder:
    """The tiktoken encoder when it matches ``tokenizers`` on ``sample`` and the probes, else ``tokenizers``."""
    reference = DocumentEncoder(tokenizer_path, "tokenizers")
    try:
        fast = DocumentEncoder(tokenizer_path, "tiktoken")
        texts = [*PARITY_PROBES, *sample]
        mismatch = next(
            (
                text
                for text, a, b in zip(texts, fast.encode(texts), reference.encode(texts))
                if not np.array_equal(a, b)
            ),
            None,
        )
    except ValueError as err:
        logger.warning("tiktoken fast path unavailable (%s); encoding with tokenizers (slower)", err)
        return reference
    if mismatch is not None:
        logger.warning(
            "tiktoken does not reproduce the tokenizer's ids (first mismatch on %r); encoding with tokenizers "
            "(slower)",
            mismatch[:80],
        )
        return reference
    logger.info(
        "tiktoken reproduces the tokenizer on %d parity texts; using it for bulk encoding", len(texts)
    )
    return fast
