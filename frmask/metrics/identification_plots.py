"""Figures of 1:N identification: the CMC and the FNIR(FPIR) curve (:mod:`frmask.metrics.identification`).

Drawn on fresh Agg figures (no pyplot state), saved with :func:`frmask.metrics.plots.save_figure`.

* :func:`plot_cmc`: identification rate CMC(r) against rank r = 1..R, one line with markers per system.
* :func:`plot_fnir_fpir`: the exact step curve of :func:`~frmask.metrics.identification.fnir_fpir_curve`
  (``steps-pre``, so ties sit at the worse corner, as the DET does), FPIR on a log axis as NIST FRVT draws it;
  an FPIR of 0 has no logarithm and is drawn at half the finest step, 0.5 / N_nonmated, where the axis is
  labelled "0". The strict points at the FPIR targets are marked and listed in the legend.
"""

from __future__ import annotations

import numpy as np


def plot_cmc(systems, path=None, *, title: str | None = None):
    """``systems``: ``[(label, cmc values for ranks 1..R), ...]``; returns the figure (and saves it to
    ``path`` when given)."""
    from frmask.metrics.plots import _new_axes

    fig, ax = _new_axes(None, (6, 4.2))
    for label, curve in systems:
        curve = np.asarray(curve, np.float64)
        ranks = np.arange(1, curve.size + 1)
        ax.plot(ranks, 100 * curve, marker="o", markersize=3.5, label=f"{label} (rank-1 {100 * curve[0]:.2f} %)",
                gid=f"cmc-{label}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, max(len(c) for _, c in systems) + 0.5)
    return _finish(fig, ax, ("rank", "identification rate (%)"), title or "CMC", "lower right", path)


def _finish(fig, ax, labels, title, legend, path):
    """Axis labels, grid, legend and title; saved to ``path`` when given."""
    from frmask.metrics.plots import save_figure

    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.grid(True, alpha=0.3)
    ax.legend(loc=legend, fontsize="small")
    ax.set_title(title)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_fnir_fpir(systems, path=None, *, title: str | None = None):
    """``systems``: ``[(label, (thresholds, fpir, fnir), points, n_nonmated), ...]``: the curve of
    :func:`~frmask.metrics.identification.fnir_fpir_curve`, the
    :class:`~frmask.metrics.identification.FpirPoint` list to mark and the number of non-mated searches."""
    from frmask.metrics.plots import _new_axes

    fig, ax = _new_axes(None, (6, 4.2))
    lo = 1.0
    for label, (_, fp, fn), points, n_nonmated in systems:
        lo = min(lo, 0.5 / max(1, n_nonmated))
        x = np.maximum(np.asarray(fp, np.float64), 0.5 / max(1, n_nonmated))
        line, = ax.plot(x, 100 * np.asarray(fn), drawstyle="steps-pre", label=label, gid=f"fnir-fpir-{label}")
        for p in points:
            if p.resolved:
                ax.plot(max(p.fpir, 0.5 / n_nonmated), 100 * p.fnir, marker="o", color=line.get_color(),
                        linestyle="none", label=f"FPIR <= {p.target:g}: FNIR {100 * p.fnir:.2f} % (t = {p.threshold:.4f})")
    ax.set_xscale("log")
    from matplotlib.ticker import NullLocator

    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(lo * 0.8, 1.0)
    ticks = [t for t in (1e-4, 1e-3, 1e-2, 1e-1, 1.0) if t > lo * 1.5]
    ax.set_xticks([lo, *ticks], ["0", *(f"{100 * t:g} %" for t in ticks)])
    ax.set_ylim(0, 100)
    return _finish(fig, ax, ("FPIR (false positive identification rate)", "FNIR at rank 1 (%)"),
                   title or "FNIR(FPIR)", "upper right", path)
