"""PretrainDataset: exact contents, determinism, rank/accumulation equivalence, resume, skip, checks, memory."""

from __future__ import annotations

import gc
import json
import pickle

import numpy as np
import psutil
import pytest
from test_tokenizer_fixtures import make_corpus, make_tokenizer

from lmfoundry.atomic import write_json_atomic
from lmfoundry.data.dataset import PretrainDataset, WindowPermutation
from lmfoundry.data.shards import TokenizeConfig, make_manifest, tokenize_shards
from lmfoundry.tokenization import tokenizer_fingerprint


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    make_tokenizer(root / "tok", vocab_size=512)
    with open(root / "docs.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in make_corpus(300, seed=7))
    config = TokenizeConfig(val_fraction=0.1, shard_tokens=3000, workers=1)
    tokenize_shards(config, root / "docs.jsonl", root / "tok", root / "shards", show_progress=False)
    return root


def all_tokens(shards_dir, split):
    manifest = json.loads((shards_dir / "manifest.json").read_text())
    paths = [shards_dir / r["path"] for r in manifest["shards"] if r["split"] == split]
    return np.concatenate([np.fromfile(p, dtype="<u2") for p in paths]).astype(np.int64)


def make(shards, **kwargs):
    args = {"split": "train", "seq_len": 16, "micro_batch_size": 2, "grad_accum_steps": 1, "seed": 3}
    return PretrainDataset(shards / "shards", **{**args, **kwargs})


def test_batches_are_windows_of_the_token_stream(shards):
    ds = make(shards)
    tokens = all_tokens(shards / "shards", "train")
    assert ds.num_tokens == len(tokens) and ds.windows_per_epoch == len(tokens) // 17
    assert len(ds.manifest["shards"]) > 3  # windows cross shard boundaries below
    for step in range(40):
        batch = ds.get_batch(step, 0)
        assert batch.shape == (2, 17) and str(batch.dtype) == "torch.int64"
        for row, window in zip(batch.numpy(), ds.window_indices(step, 0)):
            np.testing.assert_array_equal(row, tokens[window * 17 : (window + 1) * 17])
    assert ds.tokens_per_step == 2 * 16
    assert ds.bytes_per_token == ds.manifest["splits"]["train"]["bytes_per_token"] > 1.0
    val = make(shards, split="val")
    assert val.num_tokens == ds.manifest["splits"]["val"]["tokens"]


def test_same_seed_same_batches_other_seed_other_batches(shards):
    a, b, c = make(shards), make(shards), make(shards, seed=4)
    assert all(a.get_batch(s, 0).equal(b.get_batch(s, 0)) for s in range(10))
    assert not all(a.get_batch(s, 0).equal(c.get_batch(s, 0)) for s in range(10))


def test_ranks_and_micro_steps_cover_each_window_once_per_epoch(shards):
    readers = [make(shards, grad_accum_steps=2, world_size=3, rank=r) for r in range(3)]
    n = readers[0].windows_per_epoch
    per_step = readers[0].global_batch_size
    seen = []
    for step in range(-(-2 * n // per_step)):
        for micro in range(2):
            for reader in readers:
                seen.append((reader.sample_indices(step, micro), reader.window_indices(step, micro)))
    g = np.concatenate([s for s, _ in seen])
    windows = np.concatenate([w for _, w in seen])
    assert sorted(g.tolist()) == list(range(len(g)))  # no gaps, no overlap between ranks
    order = windows[np.argsort(g)]
    assert sorted(order[:n].tolist()) == list(range(n))  # epoch 0: every window exactly once
    assert sorted(order[n : 2 * n].tolist()) == list(range(n))  # epoch 1 as well ...
    assert order[:n].tolist() != order[n : 2 * n].tolist()  # ... in a different order


def test_two_ranks_equal_one_rank_with_accumulation(shards):
    single = make(shards, grad_accum_steps=2)
    ranks = [make(shards, world_size=2, rank=r) for r in range(2)]
    for step in range(15):
        together = [single.get_batch(step, m) for m in range(2)]
        apart = [ranks[r].get_batch(step, 0) for r in range(2)]
        assert all(x.equal(y) for x, y in zip(together, apart))


def test_skip_and_state_dict_resume(shards):
    ds = make(shards, grad_accum_steps=2)
    ds.skip(3)
    fresh = make(shards, grad_accum_steps=2)
    assert all(ds.get_batch(s, m).equal(fresh.get_batch(s + 3, m)) for s in range(5) for m in range(2))
    state = pickle.loads(pickle.dumps(ds.state_dict()))
    restored = make(shards, grad_accum_steps=2)
    restored.load_state_dict(state)
    assert restored.skipped_steps == 3
    assert all(restored.get_batch(s, 1).equal(ds.get_batch(s, 1)) for s in range(20, 40))
    with pytest.raises(ValueError, match="seq_len"):
        make(shards, seq_len=8).load_state_dict(state)
    with pytest.raises(ValueError, match="skip a negative"):
        ds.skip(-1)


def test_pickled_dataset_reads_the_same(shards):
    ds = make(shards)
    ds.get_batch(0, 0)  # opens file descriptors, which must not travel
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.get_batch(5, 0).equal(ds.get_batch(5, 0))


def test_window_permutation_is_a_bijection():
    for n in (1, 2, 3, 7, 64, 1000, 4097):
        perm = WindowPermutation(n, seed=1, epoch=0)(np.arange(n))
        assert sorted(perm.tolist()) == list(range(n))
    a = WindowPermutation(1000, seed=1, epoch=0)(np.arange(1000))
    assert a.tolist() != WindowPermutation(1000, seed=1, epoch=1)(np.arange(1000)).tolist()
    assert a.tolist() != WindowPermutation(1000, seed=2, epoch=0)(np.arange(1000)).tolist()
    big = WindowPermutation(10**12, seed=0, epoch=5)(np.arange(10**6, 10**6 + 1000))  # O(1) memory
    assert len(set(big.tolist())) == 1000 and big.max() < 10**12


def test_open_checks_fingerprint_truncation_checksums_and_size(shards, tmp_path):
    import shutil

    copy = tmp_path / "shards"
    shutil.copytree(shards / "shards", copy)
    fp = tokenizer_fingerprint(shards / "tok")
    PretrainDataset(copy, seq_len=16, expected_fingerprint=fp, verify_checksums=True)
    with pytest.raises(ValueError, match=r"manifest\.json: shards were made with tokenizer"):
        PretrainDataset(copy, seq_len=16, expected_fingerprint="0" * 64)
    with pytest.raises(ValueError, match="fewer than one window"):
        PretrainDataset(copy, split="val", seq_len=10**7)
    shard = copy / "train" / "00000_00001.ds"
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF
    shard.write_bytes(bytes(data))
    PretrainDataset(copy, seq_len=16)  # same size: only a checksum catches it
    with pytest.raises(ValueError, match=r"00000_00001\.ds: sha256 does not match"):
        PretrainDataset(copy, seq_len=16, verify_checksums=True)
    shard.write_bytes(bytes(data[:-6]))
    with pytest.raises(ValueError, match=r"00000_00001\.ds: .* truncated"):
        PretrainDataset(copy, seq_len=16)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["vocab_size"] = 70_000
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="uint16 cannot hold a vocabulary of 70000"):
        PretrainDataset(copy, seq_len=16)
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        PretrainDataset(tmp_path, seq_len=16)


def test_resident_memory_does_not_grow_with_corpus(tmp_path):
    n_tokens, chunk = 250_000_000, 25_000_000  # 500 MB of uint16 shards, written directly (fast)
    pattern = np.tile(np.arange(50_000, dtype="<u2"), chunk // 50_000)
    (tmp_path / "train").mkdir()
    records = []
    for shard in range(2):
        with open(tmp_path / "train" / f"{shard:05d}.ds", "wb") as f:
            for _ in range(n_tokens // chunk // 2):
                f.write(pattern.data)
        record = {"path": f"train/{shard:05d}.ds", "split": "train", "tokens": n_tokens // 2, "documents": 1}
        records.append({**record, "bytes": n_tokens, "sha256": "not computed"})
    del pattern
    manifest = make_manifest(
        records, tokenizer_fingerprint="f" * 64, vocab_size=50_000, dtype="uint16", eos_token_id=0
    )
    write_json_atomic(tmp_path / "manifest.json", manifest)
    gc.collect()
    ds = PretrainDataset(tmp_path, seq_len=65_535, micro_batch_size=16, seed=0)
    assert ds.windows_per_epoch == n_tokens // 65_536
    before = psutil.Process().memory_info().rss
    total = 0
    for step in range(-(-ds.windows_per_epoch // 16)):  # one full epoch: every byte of the corpus
        batch = ds.get_batch(step, 0)
        total += batch.numel()
        assert batch[0, 1] == (batch[0, 0] + 1) % 50_000 or batch[0, 1] == 0
    grown = psutil.Process().memory_info().rss - before
    assert total * 2 >= 500_000_000
    assert grown < 100 * 2**20, f"RSS grew by {grown / 2**20:.0f} MiB"


def test_uint32_shards_for_large_vocabularies(tmp_path):
    from lmfoundry.data.shards import ShardWriter, dtype_for_vocab

    assert dtype_for_vocab(65_536) == "uint16" and dtype_for_vocab(65_537) == "uint32"
    tokens = np.arange(100_000, 100_000 + 1000, dtype=np.uint32)
    writer = ShardWriter(tmp_path / "train", "train", "uint32", 600, "big-vocab")
    writer.write(tokens, np.array([300, 300, 400]), np.array([1, 1, 1]))
    records = writer.close()
    assert [r["tokens"] for r in records] == [600, 400]  # documents are never split across shards
    manifest = make_manifest(
        records, tokenizer_fingerprint="e" * 64, vocab_size=200_000, dtype="uint32", eos_token_id=0
    )
    write_json_atomic(tmp_path / "manifest.json", manifest)
    ds = PretrainDataset(tmp_path, seq_len=9, micro_batch_size=4, verify_checksums=True)
    assert ds.read_tokens(595, 10).tolist() == list(range(100_595, 100_605))  # across the shard boundary
    batch = ds.get_batch(0, 0)
    assert int(batch.min()) >= 100_000 and (batch[:, 1:] - batch[:, :-1] == 1).all()
