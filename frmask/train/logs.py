"""Run logs: ``log.csv`` (one row per log interval), ``eval.csv``, optional TensorBoard, the loss plot.

``log.csv`` columns: ``step`` (steps completed), ``ce_loss`` and ``kd_loss`` (means over the interval and
all processes; ``kd_loss`` empty when no teacher runs), ``lambda`` and ``lr`` (of the interval's last step),
``images_per_s`` (global images per second over the interval, wall clock). ``eval.csv`` is long format:
``step, metric, value``. On resume, rows past the resumed step are dropped (they are logged again), and the first row after it
covers the whole interval (the running sums travel in the checkpoint: :mod:`frmask.train.checkpoint`).
TensorBoard events go to ``RUN/tensorboard`` when ``torch.utils.tensorboard`` can be imported (the
``tensorboard`` package is not a dependency). :func:`plot_losses` draws the paper's Figure 3: the head's
classification loss and the distillation loss over the steps.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from frmask._atomic import atomic_path, write_text_atomic
from frmask._csv_text import csv_text

__all__ = ["LOG_COLUMNS", "RunLogger", "read_log", "plot_losses"]

LOG_COLUMNS = ("step", "ce_loss", "kd_loss", "lambda", "lr", "images_per_s")


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _truncate_csv(path: Path, header: tuple[str, ...], keep_through: int) -> None:
    """Rewrite ``path`` with the header and the rows whose step <= keep_through (all of them at -1: none)."""
    rows = []
    if path.is_file() and keep_through >= 0:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader, None)
            rows = [r for r in reader if r and r[0].isdigit() and int(r[0]) <= keep_through]
    write_text_atomic(path, csv_text([header, *rows]))


class RunLogger:
    """Writes the run's logs (rank 0 only: other processes pass ``active=False`` and nothing is written)."""

    def __init__(self, run: str | Path, *, start_step: int = 0, active: bool = True, tensorboard: bool = True):
        self.run = Path(run)
        self.active = active
        self.log_path = self.run / "log.csv"
        self.eval_path = self.run / "eval.csv"
        self.writer = None
        if not active:
            return
        keep = start_step if start_step > 0 else -1
        _truncate_csv(self.log_path, LOG_COLUMNS, keep)
        _truncate_csv(self.eval_path, ("step", "metric", "value"), keep)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard not installed (ImportError) or broken
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(str(self.run / "tensorboard"), purge_step=start_step or None)

    def log(self, step: int, ce: float, kd: float | None, lam: float, lr: float, images_per_s: float) -> None:
        if not self.active:
            return
        values = (step, ce, kd, lam, lr, images_per_s)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(csv_text([[_fmt(v) for v in values]]))
        if self.writer is not None:
            for name, value in zip(LOG_COLUMNS[1:], values[1:]):
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    self.writer.add_scalar(f"train/{name}", value, step)

    def log_eval(self, step: int, metrics: dict) -> None:
        if not self.active:
            return
        with open(self.eval_path, "a", encoding="utf-8") as f:
            f.write(csv_text([(step, name, _fmt(float(value))) for name, value in metrics.items()]))
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"eval/{name}", float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def read_log(path: str | Path) -> dict[str, list[float]]:
    """``log.csv`` as columns of floats (NaN for empty cells)."""
    columns: dict[str, list[float]] = {name: [] for name in LOG_COLUMNS}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for name in LOG_COLUMNS:
                cell = row.get(name) or ""
                columns[name].append(float(cell) if cell else math.nan)
    return columns


def plot_losses(log_csv: str | Path, png: str | Path, title: str = "") -> Path | None:
    """Figure 3 of the paper: classification (head) loss and KD loss over the steps, as a PNG (atomic).

    Returns the PNG path, or None when the log has no rows.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    log = read_log(log_csv)
    if not log["step"]:
        return None
    has_kd = any(not math.isnan(v) for v in log["kd_loss"])
    fig, axes = plt.subplots(2 if has_kd else 1, 1, figsize=(7, 6 if has_kd else 3.5), sharex=True, squeeze=False)
    axes = axes[:, 0]
    axes[0].plot(log["step"], log["ce_loss"], color="tab:blue")
    axes[0].set_ylabel("classification loss (CE)")
    if has_kd:
        axes[1].plot(log["step"], log["kd_loss"], color="tab:red")
        axes[1].set_ylabel("KD loss (MSE)")
    axes[-1].set_xlabel("step")
    lam = log.get("lambda", [])
    changes = [(log["step"][k], lam[k - 1], lam[k]) for k in range(1, len(lam)) if lam[k] != lam[k - 1]]
    for ax in axes:
        ax.grid(alpha=0.3)
        for step, old, new in changes:  # e.g. MaskInv-HG's lambda 100 -> 3000 at 77 % of the schedule
            ax.axvline(step, color="grey", linestyle="--", linewidth=1,
                       label=f"KD lambda {old:g} -> {new:g} (first logged at step {step:g})" if ax is axes[0] else None)
    if changes:
        axes[0].legend(loc="best", fontsize=8)
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    png = Path(png)
    try:
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return png
