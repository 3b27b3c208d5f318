"""Shared test setup: offline, isolated Hugging Face caches, one torch thread.

One thread: the test models are tiny, and tests run beside worker subprocesses on 2 cores, where two
threads per process made tiny matmuls ~10x slower (oversubscription), not faster.
"""

from __future__ import annotations

import os
import tempfile

# Before transformers/huggingface_hub are imported anywhere: never touch the network, and keep
# remote-code modules and caches out of the user's home (remote code is cached under HF_HOME).
_HF_HOME = tempfile.mkdtemp(prefix="lmfoundry-test-hf-")
os.environ["HF_HOME"] = _HF_HOME
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

torch.set_num_threads(1)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Real inputs nobody here wrote (books, WARC crawls, corrupt files, HumanEval, GSM8K), read-only, beside the
# repository as ../shared (the README of each folder lists its files). They are not copied into the repo.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ``../shared`` folder; a missing one is an error, not a skip: these tests prove real-input behaviour."""
    if not (SHARED / "corpora").is_dir():
        raise FileNotFoundError(f"{SHARED}: expected the shared real-input folder beside the repository")
    return SHARED
