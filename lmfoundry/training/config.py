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

from lmfoundry.training.budget import parse_duration
from lmfoundry.training.spikes import SpikeSettings

SCHEDULES = ("cosine", "wsd", "constant")
OPTIMIZERS = ("adamw", "muon")
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
    max_time: str | None = field(default=None, metadata={"alias": "--max-time"})
    """a wall-clock budget for training ("90s", "3m", "2h", "1h30m" or seconds): the step count comes from the
    throughput of a few probe steps, the schedule ends fully decayed at the deadline, and evals, checkpoints and
    the time earlier sessions spent (resume) count against it. One of max_steps, max_tokens, max_time."""
    seed: int | None = None
    """data order and init seed; default run.seed"""

    # optimizer and schedule
    optimizer: str = "adamw"
    """adamw, or muon: Muon for the 2-D matrices in the blocks, AdamW for embeddings, head, norms and biases"""
    lr: float = field(default=3e-4, metadata={"alias": "--lr"})
    """AdamW's peak learning rate (with muon: for embeddings, head, norms and biases)"""
    muon_lr: float = 0.02
    """Muon's peak lr (nanochat's matrix_lr; modded-nanogpt uses 0.02-0.05)"""
    muon_momentum: float = 0.95
    """Muon's Nesterov momentum (Keller Jordan's default)"""
    min_lr_ratio: float = 0.1
    """final lr as a fraction of the peak"""
    schedule: str = "cosine"
    """lr schedule after warmup: cosine, wsd (warmup-stable-decay) or constant"""
    warmup_steps: int | None = None
    """linear lr warmup steps; default warmup_fraction of the run's (planned) steps"""
    warmup_fraction: float = 0.05
    """warmup length when warmup_steps is unset (scales with a max_time run)"""
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
    spike_grad_zscore: float | None = None
    """grad-norm z-score that counts as a spike; default 6 when gradients are not clipped (max_grad_norm 0), else
    off (0): a clipped update is bounded, and at small batches the norm's outliers are mostly noise that would roll
    back a healthy run (README: loss spikes)"""
    spike_ratio: float = 3.0
    """loss / running-median ratio that counts as a spike"""
    spike_rollback_steps: int | None = None
    """roll back to a checkpoint at least this many steps before the spike"""
    spike_skip_extra: int | None = None
    """batches skipped past the spike after a rollback"""
    spike_lr_factor: float = 0.5
    """after a rollback the lr is multiplied by this for spike_lr_steps steps, so the run passes the spot that
    blew up more gently (PaLM section 5.1, OLMo 2)"""
    spike_lr_steps: int | None = None
    """steps the lowered lr lasts after a rollback (default: 5% of the run)"""
    spike_max_rollbacks: int = 5
    """rollbacks before the run stops (exit 3)"""
    spike_snapshot_every: int | None = None
    """steps between in-memory restore points (a host copy of model, optimizer and loop state) taken when no
    disk checkpoint is that recent, so a rollback always has a clean state to return to; default: as often as
    the rollback margin but at most 50 per run; 0: off. Memory: a few copies of the model and optimizer state"""

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
        if sum(v is not None for v in (self.max_steps, self.max_tokens, self.max_time)) != 1:
            raise ValueError("recipe section train: give exactly one of max_steps, max_tokens and max_time")
        if self.max_time is not None:
            self.max_time_s()  # parses or raises
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"recipe field train.optimizer: expected one of {', '.join(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        if self.muon_lr <= 0 or not 0 <= self.muon_momentum < 1:
            raise ValueError("recipe fields train.muon_lr / train.muon_momentum: expected muon_lr > 0 and "
                             "0 <= muon_momentum < 1")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"recipe field train.warmup_fraction: expected a value in [0, 1), got "
                             f"{self.warmup_fraction}")
        if not 0 < self.spike_lr_factor <= 1:
            raise ValueError(f"recipe field train.spike_lr_factor: expected a value in (0, 1], got "
                             f"{self.spike_lr_factor}")
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
                     "spike_max_rollbacks", "sample_max_new_tokens", "spike_snapshot_every"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
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

    def max_time_s(self) -> float | None:
        """The training budget in seconds (None: the run is sized in steps or tokens)."""
        if self.max_time is None:
            return None
        try:
            return parse_duration(self.max_time)
        except ValueError as err:
            raise ValueError(f"recipe field train.max_time: {err}") from None

    def total_steps(self, tokens_per_step: int) -> int | None:
        """Optimizer steps of the run: ``max_steps``, or ``max_tokens`` rounded up to whole steps;
        None for a ``max_time`` run, whose steps are planned from measured throughput."""
        if self.max_steps is not None:
            return self.max_steps
        if self.max_tokens is not None:
            return math.ceil(self.max_tokens / tokens_per_step)
        return None

    def warmup_for(self, total_steps: int) -> int:
        """Warmup steps: ``warmup_steps``, else ``warmup_fraction`` of the run (at least 1 when > 0)."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return max(1, round(self.warmup_fraction * total_steps)) if self.warmup_fraction > 0 else 0

    def spike_settings(self, total_steps: int) -> SpikeSettings:
        """The spike fields as one object, with the run-length defaults resolved."""
        margin = self.rollback_steps(total_steps)
        snapshot_every = self.spike_snapshot_every
        if snapshot_every is None:
            snapshot_every = max(margin, math.ceil(total_steps / 50))
        return SpikeSettings(
            enabled=self.spike_detection, window=self.spike_window, min_history=self.spike_min_history,
            zscore=self.spike_zscore, grad_zscore=self.grad_zscore(), ratio=self.spike_ratio,
            clean_after=margin, skip_extra=self.skip_extra(total_steps), lr_factor=self.spike_lr_factor,
            lr_steps=self.spike_lr_steps if self.spike_lr_steps is not None else max(1, total_steps // 20),
            max_rollbacks=self.spike_max_rollbacks, snapshot_every=snapshot_every if self.spike_detection else 0,
        )

    def grad_zscore(self) -> float:
        """The grad-norm threshold in force: the recipe's, else 6 for unclipped gradients and off for clipped."""
        if self.spike_grad_zscore is not None:
            return self.spike_grad_zscore
        return 0.0 if self.max_grad_norm > 0 else 6.0

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
