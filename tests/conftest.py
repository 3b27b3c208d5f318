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
