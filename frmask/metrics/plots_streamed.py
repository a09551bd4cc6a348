"""Figures of a :class:`~frmask.metrics.ScoreAccumulator`: DET curve and score histograms of score sets too
large to keep (exhaustive protocols), drawn like :mod:`frmask.metrics.plots` draws score arrays.

* :func:`plot_streamed_det`: the DET points at the accumulator's bin edges (exact rates there,
  :meth:`~frmask.metrics.ScoreAccumulator.approximate_det`), joined as a step curve; between two edges the
  true curve stays within the stated ``max_error``, given in the legend. The strict operating points at the
  ``marks`` FMR targets are exact (:meth:`~frmask.metrics.ScoreAccumulator.fnmr_at_fmr`; the targets must
  have been declared).
* :func:`plot_streamed_histograms`: densities of the genuine and impostor bin counts, merged into about
  ``bins`` equal bins over the occupied range.
"""

from __future__ import annotations

import numpy as np

from frmask.metrics.plots import (_MARKERS, _legend, _mark_size, _new_axes, _pct, _probit, _upper_limit,
                                  det_frame, histogram_frame, save_figure)


def plot_streamed_det(acc, path=None, *, title: str | None = None, name: str = "all", marks=(0.01, 0.001), ax=None):
    """DET curve of an accumulator (module docstring); returns the Figure."""
    _, fmr, fnmr, err = acc.approximate_det()
    ops = [acc.fnmr_at_fmr(t) for t in marks]
    lo_x, lo_y = 0.5 / acc.n_impostor, 0.5 / acc.n_genuine
    own = ax is None
    fig, ax = _new_axes(ax, (7.0, 7.4))
    text = ", ".join(f"{_pct(op.fnmr)} @ FMR {_pct(t)}" + ("*" if op.below_resolution else "")
                     for t, op in zip(marks, ops))
    label = f"{name} (FNMR {text}; curve from histogram bins, +-{_pct(err)})"
    ax.plot(_probit(fmr, lo_x), _probit(fnmr, lo_y), drawstyle="steps-pre", color="tab:blue", lw=1.6, label=label,
            gid="det-curve-0", zorder=3)
    for j, op in enumerate(ops):
        ax.plot(_probit(np.array([op.fmr]), lo_x), _probit(np.array([op.fnmr]), lo_y), linestyle="none",
                marker=_MARKERS[j], ms=_mark_size(j), mfc="tab:blue", mec="white", mew=1.0, gid=f"det-mark-0-{j}",
                zorder=4)
    cross = int(np.argmax(fnmr >= fmr))
    eer_like = max(fmr[cross], fnmr[cross])
    det_frame(ax, lo_x, lo_y, _upper_limit([eer_like, *marks], lo_x),
              _upper_limit([eer_like, *(op.fnmr for op in ops)], lo_y), title)
    handles, labels = ax.get_legend_handles_labels()
    _legend(fig, ax, own, handles, labels, ncols=1)
    if path is not None:
        save_figure(fig, path)
    return fig


def _merged(hist, start: int, stop: int, step: int) -> np.ndarray:
    counts = hist.counts[start:stop]
    pad = (-counts.size) % step
    return np.r_[counts, np.zeros(pad, counts.dtype)].reshape(-1, step).sum(axis=1)


def plot_streamed_histograms(acc, path=None, *, title: str | None = None, bins: int = 100, ax=None):
    """Genuine and impostor score densities of an accumulator (module docstring); returns the Figure."""
    g, i = acc.genuine_histogram, acc.impostor_histogram
    occupied = np.flatnonzero(g.counts + i.counts)
    if occupied.size == 0:
        raise ValueError("no acquired score inside the histogram range")
    start, stop = int(occupied[0]), int(occupied[-1]) + 1
    step = max(1, -(-(stop - start) // bins))
    n_out = -(-(stop - start) // step)
    edges = g.edges[np.minimum(start + np.arange(n_out + 1) * step, g.counts.size)]
    own = ax is None
    fig, ax = _new_axes(ax, (7.0, 5.0))
    for h, label, color in ((i, "Impostor", "tab:red"), (g, "Genuine", "tab:blue")):
        counts = _merged(h, start, stop, step)
        dens = counts / max(1, counts.sum()) / np.diff(edges)
        ax.stairs(dens, edges, fill=True, color=color, alpha=0.25, lw=0)
        ax.stairs(dens, edges, color=color, lw=1.3, label=f"{label} (n = {h.total:,})")
    return histogram_frame(fig, ax, own, title, path)
