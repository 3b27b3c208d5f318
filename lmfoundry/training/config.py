"""The recipe's ``train`` section: everything the loop needs, checked before any work starts.

Batch sizes are counted in sequences of ``seq_len`` tokens. Either ``global_batch_size`` or
``grad_accum_steps`` fixes the optimizer batch; the other is derived from the number of processes,
so the same recipe gives the same global batch on one CPU or eight GPUs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass, field

SCHEDULES = ("cosine", "wsd", "constant")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
TRACKERS = ("tensorboard", "wandb", "none")


@dataclass
class TrainConfig:
    """Fields of the ``train`` recipe section (see the README's training section for each one)."""

    shards: str = field(default="", metadata={"alias": "--shards"})
    """token shards folder (lmfoundry data tokenize); default RUN/shards"""
    tokenizer: str = field(default="", metadata={"alias": "--tokenizer"})
    """tokenizer folder; default RUN/tokenizer"""
    seq_len: int = 512
    """tokens per training sequence (windows of seq_len + 1 tokens give seq_len targets)"""
    micro_batch_size: int = 8
    """sequences per process per forward/backward"""
    global_batch_size: int | None = None
    """sequences per optimizer step over all processes (sets grad_accum_steps)"""
    grad_accum_steps: int | None = None
    """micro-batches accumulated per optimizer step (alternative to global_batch_size)"""
    max_steps: int | None = field(default=None, metadata={"alias": "--max-steps"})
    """optimizer steps to train (or max_tokens)"""
    max_tokens: int | None = None
    """tokens to train on, rounded up to whole steps (alternative to max_steps)"""
    seed: int | None = None
    """data order and init seed; default run.seed"""

    # optimizer and schedule
    lr: float = field(default=3e-4, metadata={"alias": "--lr"})
    """peak learning rate"""
    min_lr_ratio: float = 0.1
    """final lr as a fraction of the peak"""
    schedule: str = "cosine"
    """lr schedule after warmup: cosine, wsd (warmup-stable-decay) or constant"""
    warmup_steps: int = 100
    """linear lr warmup steps"""
    decay_fraction: float = 0.2
    """wsd: share of the steps spent decaying"""
    weight_decay: float = 0.1
    """AdamW weight decay (not on norms, biases and embeddings)"""
    beta1: float = 0.9
    """AdamW beta1"""
    beta2: float = 0.95
    """AdamW beta2"""
    eps: float = 1e-8
    """AdamW epsilon"""
    max_grad_norm: float = 1.0
    """clip the gradient norm to this (0: no clipping)"""

    # execution
    mixed_precision: str = "auto"
    """auto (bf16 on GPUs that have it, else no), no, bf16 or fp16"""
    gradient_checkpointing: bool = False
    """recompute activations in backward (less memory, ~30% more compute)"""
    compile: bool = False
    """torch.compile the model"""
    verify_checksums: bool = False
    """check every shard against the manifest checksums before training"""

    # logging, validation, samples
    log_every: int = 1
    """steps between metric records"""
    eval_every: int = 0
    """steps between validation passes (0: only at the end)"""
    eval_batches: int = 8
    """micro-batches per validation pass"""
    sample_every: int = 0
    """steps between sample generations (0: never)"""
    sample_prompts: list[str] = field(default_factory=lambda: ["The", "In the beginning"])
    """prompts of the sample generations"""
    sample_max_new_tokens: int = 32
    """tokens per sample generation"""
    report_to: str = "tensorboard"
    """tracker: tensorboard, wandb or none"""
    peak_flops_per_device: float | None = None
    """peak FLOP/s of one device, for MFU (default: known GPUs)"""

    # checkpoints
    checkpoint_every: int = 0
    """steps between checkpoints (0: only at the end)"""
    keep_last: int = 3
    """checkpoints kept on disk (older ones are deleted)"""

    # loss-spike detection and rollback
    spike_detection: bool = True
    """watch loss and grad norm; on a spike roll back to a clean checkpoint and skip the batches"""
    spike_window: int = 128
    """steps of history the spike detector keeps"""
    spike_min_history: int = 16
    """steps of history before the detector judges"""
    spike_zscore: float = 6.0
    """loss z-score that counts as a spike"""
    spike_grad_zscore: float = 6.0
    """grad-norm z-score that counts as a spike"""
    spike_ratio: float = 3.0
    """loss / running-median ratio that counts as a spike"""
    spike_rollback_steps: int | None = None
    """roll back to a checkpoint at least this many steps before the spike"""
    spike_skip_extra: int | None = None
    """batches skipped past the spike after a rollback"""
    spike_lr_factor: float = 1.0
    """lr multiplier for spike_lr_steps after a rollback"""
    spike_lr_steps: int = 0
    """steps the lowered lr lasts after a rollback"""
    spike_max_rollbacks: int = 5
    """rollbacks before the run stops (exit 3)"""

    # fault injection (tests, drills)
    poison_batches: str | None = None
    """fault injection: "START-END" data steps trained with lr * poison_lr_factor"""
    poison_lr_factor: float = 1000.0
    """fault injection: lr multiplier on the poison_batches steps"""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check values that do not depend on the model, the data or the number of processes."""
        if not self.shards:
            raise ValueError("recipe field train.shards: the token shards folder is required")
        if not self.tokenizer:
            raise ValueError("recipe field train.tokenizer: the tokenizer folder is required")
        positive = ("seq_len", "micro_batch_size", "log_every", "eval_batches", "keep_last", "spike_window")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"recipe field train.{name}: expected a positive integer, got {getattr(self, name)}")
        for name in ("global_batch_size", "grad_accum_steps", "max_steps", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"recipe field train.{name}: expected a positive integer, got {value}")
        if self.global_batch_size is not None and self.grad_accum_steps is not None:
            raise ValueError("recipe section train: give global_batch_size or grad_accum_steps, not both")
        if (self.max_steps is None) == (self.max_tokens is None):
            raise ValueError("recipe section train: give exactly one of max_steps and max_tokens")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"recipe field train.schedule: expected one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"recipe field train.mixed_precision: expected one of {', '.join(MIXED_PRECISION)}, "
                f"got {self.mixed_precision!r}"
            )
        for tracker in [t.strip().lower() for t in str(self.report_to).split(",") if t.strip()]:
            if tracker not in TRACKERS:
                raise ValueError(f"recipe field train.report_to: unknown tracker {tracker!r}; allowed: {', '.join(TRACKERS)}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("recipe fields train.lr / train.min_lr_ratio: expected lr > 0 and 0 <= min_lr_ratio <= 1")
        if not 0 <= self.decay_fraction <= 1:
            raise ValueError(f"recipe field train.decay_fraction: expected a value in [0, 1], got {self.decay_fraction}")
        for name in ("warmup_steps", "eval_every", "sample_every", "checkpoint_every", "spike_lr_steps",
                     "spike_max_rollbacks", "sample_max_new_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"recipe field train.{name}: expected an integer >= 0, got {getattr(self, name)}")
        if not isinstance(self.sample_prompts, list) or not all(isinstance(p, str) for p in self.sample_prompts):
            raise ValueError("recipe field train.sample_prompts: expected a list of strings")
        self.poison_range()  # parses or raises

    def trackers(self) -> list[str]:
        """Tracker names from ``report_to`` (comma-separated); ``none`` disables them.

        Accelerate silently drops a tracker whose package is missing; a run that was asked to report
        somewhere and reports nowhere is a surprise found hours later, so it is an error here.
        """
        names = [t.strip().lower() for t in str(self.report_to).split(",") if t.strip()]
        names = [t for t in names if t != "none"]
        for name in names:
            if name in TRACKERS and importlib.util.find_spec(name) is None:
                raise ValueError(f"recipe field train.report_to: {name!r} needs the {name} package (pip install {name})"
                                 " or report_to: none")
        return names

    def poison_range(self) -> range:
        """Data steps the fault injection trains with a destructive learning rate (empty if off)."""
        if not self.poison_batches:
            return range(0)
        text = str(self.poison_batches)
        try:
            start, _, end = text.partition("-")
            first, last = int(start), int(end or start)
        except ValueError:
            raise ValueError(f"recipe field train.poison_batches: expected 'START-END' data steps, got {text!r}") from None
        if first < 0 or last < first:
            raise ValueError(f"recipe field train.poison_batches: expected 0 <= START <= END, got {text!r}")
        return range(first, last + 1)

    def grad_accum_for(self, world_size: int) -> int:
        """Micro-batches per optimizer step on each process, so the global batch is as the recipe says."""
        if self.grad_accum_steps is not None:
            return self.grad_accum_steps
        if self.global_batch_size is None:
            return 1
        per_pass = world_size * self.micro_batch_size
        if self.global_batch_size % per_pass:
            raise ValueError(
                f"recipe field train.global_batch_size={self.global_batch_size} is not divisible by "
                f"processes ({world_size}) x micro_batch_size ({self.micro_batch_size}) = {per_pass}"
            )
        return self.global_batch_size // per_pass

    def total_steps(self, tokens_per_step: int) -> int:
        """Optimizer steps of the run: ``max_steps``, or ``max_tokens`` rounded up to whole steps."""
        if self.max_steps is not None:
            return self.max_steps
        return math.ceil(self.max_tokens / tokens_per_step)

    def rollback_steps(self, total_steps: int) -> int:
        """How far before a spike a restored checkpoint must be (PaLM: ~100 steps), scaled to short runs."""
        if self.spike_rollback_steps is not None:
            return self.spike_rollback_steps
        return max(1, min(100, total_steps // 100))

    def skip_extra(self, total_steps: int) -> int:
        """Batches skipped past the spike itself, beyond those seen between checkpoint and spike."""
        if self.spike_skip_extra is not None:
            return self.spike_skip_extra
        return self.rollback_steps(total_steps)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
