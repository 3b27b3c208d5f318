"""The run's own records: ``metrics.jsonl``, ``spikes.jsonl`` and the loss-curve PNG.

``metrics.jsonl`` holds one JSON object per line with a ``kind``: ``run`` (one per session, at its
start: device, processes, precision, library versions; see :mod:`lmfoundry.training.environment`),
``train`` (step, loss, lr, grad_norm, tokens, tokens_per_s, mfu, elapsed_s, train_time_s), ``val``
(val_loss, val_bpb), ``samples`` (generations from the fixed prompts) or ``rollback`` (a loss spike
rolled the run back: ``step`` is the step restored, ``spike_step`` the step that spiked, with what was
restored and skipped and the lr reduction that follows). A rollback removes the rows of the abandoned
steps, so the file is one history: each step appears once, as the run kept it (``run`` and
``rollback`` records stay; ``spikes.jsonl`` lists every spike too).

``elapsed_s`` is wall-clock seconds since this session started (it restarts on resume);
``train_time_s`` is wall-clock seconds of training over all sessions: it is checkpointed, so a
resume continues it from the checkpoint (time a killed session spent after its last checkpoint is
lost with that work), and a spike rollback keeps it running (the rolled-back work took real time).
Trackers (TensorBoard, W&B) get the same numbers; these files exist so that a run folder is
self-describing without any tracker.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


class JsonlLog:
    """Append-only JSON-lines file (one writer: the main process), flushed after every line.

    The file stays open between appends: reopening it for each step's record is a visible
    share of a short step.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = None

    def append(self, record: dict) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open on purpose)
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a kill: the rest is still good
                    continue
        return records

    def truncate_after(self, step: int, keep_kinds: tuple[str, ...] = ()) -> None:
        """Drop records of steps after ``step`` (a resumed run replays them, a rollback abandoned them),
        except those whose ``kind`` is in ``keep_kinds`` (events, not rows of a branch); atomic rewrite."""
        self.close()
        if not self.path.is_file():
            return
        kept = [r for r in self.read() if r.get("step", 0) <= step or r.get("kind") in keep_kinds]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, self.path)


def plot_loss_curve(metrics: list[dict], spikes: list[dict], path: Path, title: str = "") -> None:
    """Train loss (last record per step), val loss, and spike events as red crosses; PNG, atomic."""
    train = {r["step"]: r["loss"] for r in metrics if r.get("kind") == "train"}
    val = {r["step"]: r["val_loss"] for r in metrics if r.get("kind") == "val"}
    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if train:
        steps = sorted(train)
        ax.plot(steps, [train[s] for s in steps], lw=1, color="tab:blue", label="train loss")
    if val:
        steps = sorted(val)
        ax.plot(steps, [val[s] for s in steps], "o-", ms=4, color="tab:orange", label="val loss")
    curve = [v for v in [*train.values(), *val.values()] if math.isfinite(v)]
    if curve:  # scale to the curve: a spike of 40 nats must not flatten it into a line
        low, high = min(curve), max(curve)
        pad = 0.05 * (high - low or 1.0)
        ax.set_ylim(low - pad, high + pad)
    if spikes:
        top = ax.get_ylim()[1]
        # spikes beyond the axis (or NaN) sit on its top edge, labelled with their loss
        shown = [min(e["loss"], top) if isinstance(e.get("loss"), (int, float)) and math.isfinite(e["loss"]) else top
                 for e in spikes]
        ax.scatter([e["step"] for e in spikes], shown, marker="x", s=60, color="red", zorder=3, clip_on=False,
                   label=f"loss spikes, rolled back ({len(spikes)})")
        for event, y in zip(spikes, shown):
            ax.axvline(event["step"], color="red", alpha=0.25, lw=1)
            if y == top:
                ax.annotate(f"{event.get('loss'):.3g}", (event["step"], top), textcoords="offset points",
                            xytext=(4, -12), color="red", fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title or "training loss")
    ax.grid(alpha=0.3)
    if train or val:
        ax.legend()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
