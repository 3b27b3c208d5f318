"""The pretraining dataset: fixed windows over token shards, addressed purely by (seed, step, rank).

The concatenated tokens of a split (documents separated by ``<|endoftext|>``, windows may cross
document and shard boundaries) are cut into ``windows_per_epoch`` windows of ``seq_len + 1`` tokens.
Global sample ``g`` of a run is

    g = (step + skipped_steps) * (A * W * B) + (micro_step * W + rank) * B + i,   i < B

and reads window ``perm_epoch(g mod windows_per_epoch)`` with ``epoch = g // windows_per_epoch``, where
``perm_epoch`` is a seeded bijection that changes every epoch. There is no iterator state: resuming,
skipping past a loss spike, or changing how a global batch is spread over ranks and accumulation
steps (2 ranks × A=1 read the same samples as 1 rank × A=2) are all exact by construction.

The permutation is a Feistel network with cycle walking (O(1) memory at any corpus size), and
tokens are read with ``os.pread`` rather than a memory map, so resident memory does not grow as
training touches more of the corpus.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmfoundry.data.shards.format import SPLITS, TOKEN_DTYPES, check_shard_files, read_manifest

logger = logging.getLogger(__name__)

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class WindowPermutation:
    """A seeded bijection of ``range(n)``: a 4-round Feistel network on the smallest even number of
    bits covering ``n``, walking the cycle until the value falls back inside ``range(n)``."""

    def __init__(self, n: int, seed: int, epoch: int):
        self.n = n
        half_bits = max(1, math.ceil(math.log2(max(n, 2)) / 2))
        self.half_bits = np.uint64(half_bits)
        self.half_mask = np.uint64((1 << half_bits) - 1)
        self.keys = np.random.SeedSequence([seed, epoch]).generate_state(4, dtype=np.uint64)

    def __call__(self, index: np.ndarray) -> np.ndarray:
        x = np.asarray(index, dtype=np.uint64)
        out = self._rounds(x)
        outside = out >= self.n
        while outside.any():  # at most 4n domain size, so a few steps on average
            out[outside] = self._rounds(out[outside])
            outside = out >= self.n
        return out.astype(np.int64)

    def _rounds(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half_bits, x & self.half_mask
        for key in self.keys:
            left, right = right, left ^ (_mix(right ^ key) & self.half_mask)
        return (left << self.half_bits) | right


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a cheap, well-mixed 64-bit hash (uint64 arithmetic wraps)."""
    z = (z * np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return z ^ (z >> np.uint64(31))


class PretrainDataset:
    """Batches of ``[micro_batch_size, seq_len + 1]`` token ids for one rank (see the module docstring).

    Opening checks the manifest: the tokenizer fingerprint against ``expected_fingerprint``, that the
    dtype holds the vocabulary, that every shard has the size its token count implies, and, with
    ``verify_checksums``, every shard's sha256. Each failure is a ``ValueError`` naming the file.
    """

    def __init__(
        self,
        shards_dir: str | Path,
        split: str = "train",
        seq_len: int = 1024,
        micro_batch_size: int = 1,
        grad_accum_steps: int = 1,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        expected_fingerprint: str | None = None,
        verify_checksums: bool = False,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        for name, value in (
            ("seq_len", seq_len),
            ("micro_batch_size", micro_batch_size),
            ("grad_accum_steps", grad_accum_steps),
            ("world_size", world_size),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.shards_dir = Path(shards_dir)
        self.manifest: dict[str, Any] = read_manifest(self.shards_dir)
        self.fingerprint: str = self.manifest["tokenizer_fingerprint"]
        if expected_fingerprint is not None and expected_fingerprint != self.fingerprint:
            raise ValueError(
                f"{self.shards_dir / 'manifest.json'}: shards were made with tokenizer {self.fingerprint[:12]}…, "
                f"but the model's tokenizer is {expected_fingerprint[:12]}…; re-tokenize with the model's tokenizer"
            )
        self.split = split
        self.seq_len = seq_len
        self.micro_batch_size = micro_batch_size
        self.grad_accum_steps = grad_accum_steps
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.skipped_steps = 0

        self.dtype = np.dtype(TOKEN_DTYPES[self.manifest["dtype"]]).newbyteorder("<")
        self._shards = [r for r in self.manifest["shards"] if r["split"] == split]
        check_shard_files(self.shards_dir, self._shards, self.dtype.itemsize, verify_checksums)
        counts = np.array([r["tokens"] for r in self._shards], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.num_tokens = int(self._starts[-1])
        self.windows_per_epoch = self.num_tokens // (seq_len + 1)
        if self.windows_per_epoch == 0:
            raise ValueError(
                f"{self.shards_dir}: split {split!r} has {self.num_tokens} tokens, fewer than one window of "
                f"seq_len + 1 = {seq_len + 1}"
            )
        self._fds: dict[int, int] = {}
        self._fd_pid = os.getpid()
        self._perms: dict[int, WindowPermutation] = {}

    # -- the contract ---------------------------------------------------------------------------
    @property
    def global_batch_size(self) -> int:
        """Samples per optimizer step over all ranks: A * W * B."""
        return self.grad_accum_steps * self.world_size * self.micro_batch_size

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.seq_len

    @property
    def bytes_per_token(self) -> float:
        """UTF-8 bytes of source text per token in this split: bpb = loss / ln(2) / bytes_per_token."""
        return float(self.manifest["splits"][self.split]["bytes_per_token"])

    def sample_indices(self, step: int, micro_step: int) -> np.ndarray:
        """Global sample indices ``g`` of this rank's micro-batch (see the module docstring)."""
        if step < 0 or not 0 <= micro_step < self.grad_accum_steps:
            raise ValueError(
                f"step must be >= 0 and micro_step in [0, {self.grad_accum_steps}); got {step}, {micro_step}"
            )
        first = (step + self.skipped_steps) * self.global_batch_size
        first += (micro_step * self.world_size + self.rank) * self.micro_batch_size
        return first + np.arange(self.micro_batch_size, dtype=np.int64)

    def window_indices(self, step: int, micro_step: int) -> np.ndarray:
        """Which windows this rank's micro-batch reads."""
        g = self.sample_indices(step, micro_step)
        epochs, positions = np.divmod(g, self.windows_per_epoch)
        windows = np.empty_like(g)
        for epoch in np.unique(epochs):
            selected = epochs == epoch
            windows[selected] = self._permutation(int(epoch))(positions[selected])
        return windows

    def get_batch(self, step: int, micro_step: int) -> torch.Tensor:
        """``LongTensor [micro_batch_size, seq_len + 1]``: inputs are ``[:, :-1]``, labels ``[:, 1:]``
        (or pass the whole row as both ``input_ids`` and ``labels`` to a model that shifts inside)."""
        rows = [self.read_window(int(w)) for w in self.window_indices(step, micro_step)]
        return torch.from_numpy(np.stack(rows))

    def skip(self, n_steps: int) -> None:
        """Skip ``n_steps`` optimizer steps worth of data on every rank (after a loss-spike rollback)."""
        if n_steps < 0:
            raise ValueError(f"cannot skip a negative number of steps ({n_steps})")
        self.skipped_steps += n_steps
        logger.info("data: skipping %d steps (%d skipped in total)", n_steps, self.skipped_steps)

    def epoch(self, step: int) -> float:
        """Epochs of this split consumed after ``step`` optimizer steps."""
        return (step + self.skipped_steps) * self.global_batch_size / self.windows_per_epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            "skipped_steps": self.skipped_steps,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "split": self.split,
            "global_batch_size": self.global_batch_size,
            "windows_per_epoch": self.windows_per_epoch,
            "tokenizer_fingerprint": self.fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the skip count; refuse a state from a different data stream."""
        for key in ("seed", "seq_len", "split", "windows_per_epoch", "tokenizer_fingerprint"):
            mine = self.state_dict()[key]
            if key in state and state[key] != mine:
                raise ValueError(f"data state was saved with {key}={state[key]!r}, this dataset has {mine!r}")
        if state.get("global_batch_size", self.global_batch_size) != self.global_batch_size:
            logger.warning(
                "global batch size changed from %d to %d: steps after the resume read different samples",
                state["global_batch_size"],
                self.global_batch_size,
            )
        self.skipped_steps = int(state["skipped_steps"])

    # -- reading ----------------------------------------------------------------------------------
    def read_window(self, window: int) -> np.ndarray:
        """Tokens ``[window * (S + 1), (window + 1) * (S + 1))`` of the split, as int64."""
        if not 0 <= window < self.windows_per_epoch:
            raise IndexError(f"window {window} out of range [0, {self.windows_per_epoch})")
        return self.read_tokens(window * (self.seq_len + 1), self.seq_len + 1)

    def read_tokens(self, start: int, count: int) -> np.ndarray:
        """``count`` tokens from global position ``start`` of the split, across shard boundaries."""
        out = np.empty(count, dtype=np.int64)
        filled = 0
        shard = int(np.searchsorted(self._starts, start, side="right")) - 1
        while filled < count:
            offset = start + filled - int(self._starts[shard])
            n = min(count - filled, int(self._starts[shard + 1]) - (start + filled))
            size = n * self.dtype.itemsize
            data = os.pread(self._fd(shard), size, offset * self.dtype.itemsize)
            if len(data) != size:
                raise ValueError(
                    f"{self.shards_dir / self._shards[shard]['path']}: short read (file truncated?)"
                )
            out[filled : filled + n] = np.frombuffer(data, dtype=self.dtype)
            filled += n
            shard += 1
        return out

    def _fd(self, shard: int) -> int:
        if self._fd_pid != os.getpid():  # a forked DataLoader worker: open our own descriptors
            self._fds, self._fd_pid = {}, os.getpid()
        if shard not in self._fds:
            self._fds[shard] = os.open(self.shards_dir / self._shards[shard]["path"], os.O_RDONLY)
        return self._fds[shard]

    def _permutation(self, epoch: int) -> WindowPermutation:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[epoch] = WindowPermutation(self.windows_per_epoch, self.seed, epoch)
        return self._perms[epoch]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state

    def close(self) -> None:
        """Close the shard file descriptors (they reopen on the next read)."""
        if self._fd_pid == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown os may already be gone
            self.close()
