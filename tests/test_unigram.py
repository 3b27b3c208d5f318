"""The unigram bits-per-byte baseline equals a hand computation from the tokenizer's own ids."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from test_tokenizer_fixtures import make_tokenizer
from transformers import AutoTokenizer

from lmfoundry.data.shards import TokenizeConfig, tokenize_shards
from lmfoundry.eval.unigram import unigram_bits_per_byte
from lmfoundry.tokenization import train_tokenizer
from lmfoundry.tokenization.sources import is_validation


def test_unigram_bits_per_byte_matches_hand_computation(tmp_path):
    docs = [f"Document {i}: the quick brown fox jumps over {i * 7} lazy dogs. émoji 🦊 {'ab' * (i % 5)}" for i in range(400)]
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    train_tokenizer([corpus], 320, tmp_path / "tok", show_progress=False)
    config = TokenizeConfig(val_fraction=0.2, val_method="documents", workers=1)
    manifest = tokenize_shards(config, [corpus], tmp_path / "tok", tmp_path / "shards", show_progress=False)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")

    # Rebuild both splits from the documents: the manifest's split rule decides membership.
    val_bytes = manifest["splits"]["val"]["bytes"]
    assert 0 < val_bytes < sum(len(d.encode()) for d in docs)
    counts: Counter[int] = Counter()
    val_ids: list[int] = []
    for doc in docs:
        ids = [*tokenizer.encode(doc, add_special_tokens=False), tokenizer.eos_token_id]
        if is_validation(doc, 0.2):
            val_ids.extend(ids)
        else:
            counts.update(ids)
    vocab = manifest["vocab_size"]
    total = sum(counts.values()) + vocab  # add-one smoothing over the whole vocabulary
    expected = -sum(math.log2((counts[t] + 1) / total) for t in val_ids) / val_bytes

    assert unigram_bits_per_byte(tmp_path / "shards") == pytest.approx(expected, rel=1e-9)


def test_unigram_baseline_refuses_an_empty_split(tmp_path):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("a small document about nothing in particular\n", encoding="utf-8")
    make_tokenizer(tmp_path / "tok", vocab_size=320)
    tokenize_shards(TokenizeConfig(val_fraction=0.0, workers=1), [corpus], tmp_path / "tok", tmp_path / "shards")
    with pytest.raises(ValueError, match="'val' split is empty"):
        unigram_bits_per_byte(tmp_path / "shards")
