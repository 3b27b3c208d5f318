"""Deduplication quality on a corpus with planted duplicates of known Jaccard similarity.

Documents are random pseudo-words (so unrelated documents share no 5-grams). Each group has a
base document, an exact copy (as a .txt file in another input: deduplication spans sources), a
copy differing only in case and spacing, and near copies whose 5-gram Jaccard similarity to the
base is 0.9 and 0.8; each base also has a distinct-but-similar variant at 0.3 that must be kept.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np

from lmfoundry.data.curation import CurateConfig, curate
from lmfoundry.data.curation.config import FILTER_NAMES

N_GROUPS = 60
N_WORDS = 300
NGRAM = 5


def pseudo_words(rng: random.Random, n: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ru", "te", "sa", "po", "ne", "vi", "da", "gu", "fe", "zo", "bi", "ha"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(n)]


def shingles(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


def jaccard(a: list[str], b: list[str]) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def variant(rng: random.Random, words: list[str], target: float, vocab: list[str]) -> list[str]:
    """Replace k evenly spread words so that the 5-gram Jaccard similarity is close to ``target``.

    Each replacement, more than 5 words from the next, removes 5 shingles and adds 5 new ones:
    J = (M - 5k) / (M + 5k) with M shingles, so k = M (1 - J) / (5 (1 + J)).
    """
    m = len(words) - NGRAM + 1
    k = round(m * (1 - target) / (NGRAM * (1 + target)))
    out = list(words)
    step = len(words) // k
    for i in range(k):
        pos = i * step + rng.randrange(0, step - NGRAM)
        out[pos] = rng.choice(vocab) + "x"  # "x": never equal to the word it replaces
    return out


def build_corpus(root: Path) -> dict[str, str]:
    """Write the inputs; return {document id: its role}."""
    rng = random.Random(1234)
    vocab = pseudo_words(rng, 3000)
    roles: dict[str, str] = {}
    bases, near = [], []
    copies = root / "b_copies"
    copies.mkdir(parents=True)
    for g in range(N_GROUPS):
        words = [rng.choice(vocab) for _ in range(N_WORDS)]
        text = " ".join(words)
        bases.append({"id": f"base-{g}", "text": text})
        roles[f"base-{g}"] = f"group-{g}"
        similar = variant(rng, words, 0.3, vocab)
        assert 0.25 <= jaccard(words, similar) <= 0.35
        bases.append({"id": f"sim30-{g}", "text": " ".join(similar)})
        roles[f"sim30-{g}"] = "distinct"
        (copies / f"exact-{g}.txt").write_text(text, encoding="utf-8")
        roles[f"{copies}/exact-{g}.txt"] = f"group-{g}"  # a text file's id: <input>/<relative path>
        near.append({"id": f"spacing-{g}", "text": "  ".join(words).upper()})  # same normalized text
        roles[f"spacing-{g}"] = f"group-{g}"
        for target in (0.9, 0.8):
            copy = variant(rng, words, target, vocab)
            assert abs(jaccard(words, copy) - target) < 0.03
            near.append({"id": f"near{int(target * 100)}-{g}", "text": " ".join(copy)})
            roles[f"near{int(target * 100)}-{g}"] = f"group-{g}"
    (root / "a_base.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bases), encoding="utf-8")
    with gzip.open(root / "c_near.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in near)
    return roles


def kept_ids(out: Path) -> set[str]:
    ids = set()
    for path in out.glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            ids.update(json.loads(line)["id"] for line in f)
    return ids


def test_dedup_precision_and_recall_on_planted_duplicates(tmp_path):
    corpus = tmp_path / "corpus"
    roles = build_corpus(corpus)
    config = CurateConfig(
        inputs=[str(corpus / "a_base.jsonl"), str(corpus / "b_copies"), str(corpus / "c_near.jsonl.gz")],
        filters={name: False for name in FILTER_NAMES},
        pii=False,
        workers=1,
        tasks=1,
        progress=False,
    )
    stats = curate(config, tmp_path / "out")
    kept = kept_ids(tmp_path / "out")
    assert kept <= set(roles)
    removed = set(roles) - kept

    groups: dict[str, list[str]] = {}
    for doc_id, role in roles.items():
        if role.startswith("group-"):
            groups.setdefault(role, []).append(doc_id)
    true_positives = false_positives = 0
    for members in groups.values():
        gone = sum(m in removed for m in members)
        true_positives += min(gone, len(members) - 1)
        false_positives += max(0, gone - (len(members) - 1))  # the whole group removed
    distinct_removed = sum(roles[d] == "distinct" for d in removed)
    false_positives += distinct_removed
    precision = true_positives / max(true_positives + false_positives, 1)
    recall = true_positives / sum(len(m) - 1 for m in groups.values())
    print(f"dedup precision={precision:.3f} recall={recall:.3f}")

    # every exact copy (byte-identical, or equal up to case and whitespace) goes, the base stays
    for g in range(N_GROUPS):
        assert f"base-{g}" in kept
        assert f"spacing-{g}" in removed
        assert f"{corpus / 'b_copies'}/exact-{g}.txt" in removed
    near_ids = [d for d in roles if d.startswith(("near90-", "near80-"))]
    assert sum(d in removed for d in near_ids) / len(near_ids) >= 0.90
    assert distinct_removed / N_GROUPS < 0.02
    assert precision >= 0.98 and recall >= 0.95

    # stats.json attributes each removal to the right kind of duplicate
    dedup = next(s for s in stats["stages"] if s["name"] == "dedup")
    assert dedup["dropped"]["dedup:exact"]["documents"] == 2 * N_GROUPS
    assert dedup["dropped"]["dedup:minhash"]["documents"] == len(removed) - 2 * N_GROUPS
    assert stats["output"]["documents"] == len(kept)


def test_fast_minhash_shingles_match_datatrove_recipe():
    """Our shingling (one join, byte slices, fast normalization) gives datatrove's exact hashes."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import TextNormConfig, simplify_text

    from lmfoundry.data.curation.dedup import MinhashSignature, StockMinhashSignature, fast_simplify_text
    from lmfoundry.data.curation.words import _WORD_RE, RegexWordTokenizer

    rng = random.Random(7)
    vocab = [*pseudo_words(rng, 200), "cannot", "Cannot", "don't", "e.g.", "3.5", "1,000", "x²", "Über"]
    texts = ["", "too few words", "exactly five words here now"]
    texts += [" ".join(rng.choice(vocab) for _ in range(rng.randint(5, 300))) for _ in range(40)]
    texts += [
        "Ça a été très élégant, naïve café à 12,5 € (東京 タワー)!\n\tIt's 10:30 on www.example.com.",
        "I cannot, Cannot, CANNOT do\u2003it\x0b now\u00a0-- क्षि १२३ ...",
    ]
    tok = RegexWordTokenizer()
    step = MinhashSignature("/unused", config=MinhashConfig(), language=tok)
    stock = StockMinhashSignature("/unused", config=MinhashConfig(), language=tok)
    for text in texts:
        shingles = step.get_shingles(text)
        assert shingles.tolist() == stock.get_shingles(text).tolist()
        if shingles.size:
            assert step.get_signature(shingles) == stock.get_signature(shingles)
        assert tok.word_tokenize(text) == _WORD_RE.findall(text)
        other = TextNormConfig(lowercase=False, remove_punctuation=False, norm_weekdays=True)
        assert fast_simplify_text(text, other) == simplify_text(text, other)
    # The division-free modulus: every residue class edge, over several blocks, in both precisions
    p = (1 << 61) - 1
    edges = [0, 1, 2, 7, 8, p - 1, p, p + 1, 2 * p, 1 << 61, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]
    many = np.array(edges + [rng.getrandbits(64) for _ in range(5000)], dtype=np.uint64).reshape((-1, 1))
    for precision in (64, 32):
        config = MinhashConfig(hash_config=HashConfig(precision=precision))
        ours = MinhashSignature("/unused", config=config, language=tok)
        reference = StockMinhashSignature("/unused", config=config, language=tok)
        assert ours.get_signature(many) == reference.get_signature(many)
        for value in edges:
            one = np.array([[value]], dtype=np.uint64)
            assert ours.get_signature(one) == reference.get_signature(one)


def test_target_similarity_chooses_bands_and_verification_removes_only_true_matches(tmp_path):
    from lmfoundry.data.curation.dedup import bands_for_similarity, detection_probability

    assert (
        CurateConfig(dedup={"similarity": 0.8}).dedup_params()["num_buckets"] == bands_for_similarity(0.8)[0]
    )
    for target in (0.7, 0.8, 0.9):
        b, r = bands_for_similarity(target)
        assert b * r <= 128 and detection_probability(target, b, r) >= 0.9
        assert detection_probability(target - 0.2, b, r) < 0.3

    corpus = tmp_path / "corpus"
    roles = build_corpus(corpus)
    config = CurateConfig(
        inputs=[str(corpus / "a_base.jsonl"), str(corpus / "c_near.jsonl.gz")],
        filters={name: False for name in FILTER_NAMES},
        dedup={"similarity": 0.85, "verify": True, "exact": False},
        pii=False,
        workers=1,
        tasks=1,
        progress=False,
    )
    curate(config, tmp_path / "out")
    kept = kept_ids(tmp_path / "out")
    config.dedup = {"similarity": 0.85, "exact": False}
    curate(config, tmp_path / "unverified")
    unverified = kept_ids(tmp_path / "unverified")
    assert sum(d not in unverified for d in roles if d.startswith("near80-")) > 10  # candidates below 0.85
    near90 = [d for d in roles if d.startswith("near90-")]
    assert sum(d not in kept for d in near90) / len(near90) >= 0.9  # Jaccard 0.9 >= 0.85: duplicates
    # Jaccard 0.8 < 0.85: often candidates (the bands catch ~75% of them), never removed after verification
    assert all(d in kept for d in roles if d.startswith(("near80-", "sim30-", "base-")))
