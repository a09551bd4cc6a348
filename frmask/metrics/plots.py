"""Figures of verification scores: DET curves on normal-deviate axes and score histograms.

Everything is drawn with matplotlib's non-interactive Agg canvas on a fresh
:class:`matplotlib.figure.Figure` (or on an ``ax`` you pass in): no pyplot global state, no window ever
opens, and matplotlib is imported only when a function is called, so ``import frmask.metrics`` stays light.

:func:`plot_det` draws the exact DET step curve of :func:`frmask.metrics.det_curve`:

* Coordinates are normal deviates (probits), ``x = ndtri(FMR)``, ``y = ndtri(FNMR)``
  (``scipy.special.ndtri``, the function behind ``scipy.stats.norm.ppf``). Rates of 0 and 1 have no
  probit, so every rate is first clipped to ``[lo, 1 - lo]`` with ``lo`` half the finest rate step over
  the systems on the figure (``0.5 / max N_I`` for FMR, ``0.5 / max N_G`` for FNMR): a rate of 0 is drawn
  half a step below the smallest non-zero rate, at the lower edge of the axes, where the axis is labelled
  "0" (and "100%" at the upper clip when it is in view; percent ticks closer than 0.3 probit units to
  those are left out). Nothing else is changed.
* Percent ticks at 0.01 %, 0.1 %, 1 %, 5 %, 10 %, 20 %, 40 %, 60 %, 80 % (plus lower decades, 95 %,
  99 % and 99.9 % when the range reaches them), only those inside the axes. The upper limit is 50 % unless
  an operating point or an EER needs more room (then 80 %, 95 %, 99 %, 99.9 % or the clip).
* The curve's vertices are the exact ``(FMR, FNMR)`` pairs, thresholds ascending, drawn with
  ``drawstyle="steps-pre"``: between two consecutive thresholds the line first rises (FNMR) and then moves
  left (FMR), so where a genuine and an impostor score tie the corner sits at the worse of the two
  achievable points, never at an unachievable better one. Without ties every step is a single axis-aligned
  segment and the drawing style does not matter.
* Each system's strict operating points at the ``marks`` FMR targets (:func:`frmask.metrics.fnmr_at_fmr`,
  by default FMR100 and FMR1000) are drawn as markers on the curve and listed in its legend entry.
* Curves with more than ``thin_above`` (default 2e6) points are thinned before drawing: the probit extent
  of the curve is cut into a 4000 x 4000 grid and only the first and last vertex of each run of
  consecutive vertices inside one grid cell are kept, plus the marked operating points. The staircase is
  monotone, so it visits at most 8001 cells and keeps at most ~16000 vertices, every kept vertex is an
  exact curve point, and the drawn line never leaves the cells the exact line passes through: the shape
  changes by less than 1/4000 of the curve's extent, a fraction of a pixel at any ordinary size.

On a figure of their own the legends go below the axes (they can never hide a curve); on an ``ax`` you
pass they go inside it at matplotlib's "best" place.

Line artists carry ``gid`` values so figures can be inspected programmatically: ``"det-curve-<i>"`` for
system ``i`` (in the order given), ``"det-mark-<i>-<j>"`` for its operating point at ``marks[j]`` and
``"det-eer-line"`` for the FMR = FNMR diagonal.

:func:`save_figure` writes PNG, PDF or SVG atomically (a temporary file beside the target, then
``os.replace``), at 150 dpi.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DPI", "FORMATS", "THIN_ABOVE", "THIN_GRID", "plot_det", "plot_score_histograms", "save_figure",
           "thin_staircase"]

DPI = 150
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
THIN_ABOVE = 2_000_000  # curves with more points than this are thinned (see the module docstring)
THIN_GRID = 4000  # grid cells per axis used by the thinning

# Tick positions (rates) of the DET axes; only those inside the axis range are shown.
_DET_TICKS = (1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95, 0.99, 0.999)
# Upper axis limits (rates) tried in turn: the first leaving room above every rate that must be visible.
_DET_UPPER = (0.5, 0.8, 0.95, 0.99, 0.999)
_TICK_GAP = 0.3  # probit distance kept between the "0" (or "100%") tick and the percent ticks
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


# ---------------------------------------------------------------------------------------------- saving

def save_figure(fig: Figure, path, *, into=None) -> Path:
    """Write ``fig`` to ``path`` atomically at :data:`DPI` dpi; the format comes from the suffix.

    ``into``: write to this file instead (a caller's own temporary, e.g. from
    :func:`frmask._atomic.atomic_paths`), still in the format of ``path``'s suffix.

    Supported suffixes: ``.png``, ``.pdf``, ``.svg`` (any case). The figure is rendered into a temporary
    file in the target's folder (created if missing) which then replaces ``path`` with ``os.replace``, so
    readers never see a partial file and nothing is left behind when rendering fails. The file gets the
    usual permissions of a new file (0666 minus the umask). Returns the path as a :class:`~pathlib.Path`.
    """
    from frmask._atomic import atomic_path

    path = Path(os.fspath(path))
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the figure format of {str(path)!r}: use a "
                         f"{', '.join(FORMATS)} suffix")
    if into is not None:
        fig.savefig(into, format=fmt, dpi=DPI)
        return path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI)
    return path


def _new_axes(ax, figsize) -> tuple[Figure, Axes]:
    """The figure of ``ax``, or a fresh Agg-backed figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _legend(fig, ax, own: bool, handles, labels, ncols: int) -> None:
    """Below the axes on a figure of our own (it can never hide data); inside ``ax`` ("best") otherwise."""
    if own:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(labels)), fontsize="small",
                   frameon=False)
    else:
        ax.legend(handles, labels, loc="best", fontsize="small", framealpha=0.92)


# ----------------------------------------------------------------------------------------- DET curves

def _systems(systems) -> list[tuple[str, object, object]]:
    """``[(name, genuine, impostor), ...]`` from a mapping or a sequence of triples, with clear errors."""
    if isinstance(systems, Mapping):
        items = []
        for name, pair in systems.items():
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                got = f"{len(pair)} item(s)" if isinstance(pair, Sequence) else type(pair).__name__
                raise ValueError(f"system {name!r}: expected a (genuine, impostor) pair of score arrays, got {got}")
            items.append((str(name), pair[0], pair[1]))
    elif isinstance(systems, Sequence) and not isinstance(systems, (str, bytes)):
        items = []
        for k, entry in enumerate(systems):
            if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 3:
                got = f"{len(entry)} item(s)" if isinstance(entry, Sequence) else type(entry).__name__
                raise ValueError(f"systems[{k}]: expected a (name, genuine, impostor) triple, got {got}")
            items.append((str(entry[0]), entry[1], entry[2]))
    else:  # a ValueError like every other malformed input of the metrics (ScoreError)
        msg = (f"systems must be a mapping name -> (genuine, impostor) or a list of (name, genuine, impostor) "
               f"triples, got {type(systems).__name__}")
        raise ValueError(msg)  # noqa: TRY004
    if not items:
        raise ValueError("no systems to plot: give at least one name -> (genuine, impostor)")
    return items


def _mark_size(j: int) -> float:
    """Later marks are drawn smaller and on top, so marks that coincide (below resolution) all show."""
    return max(8.5 - 2.5 * j, 4.0)


def _pct(rate: float) -> str:
    """A rate as a short percentage: 0.0321 -> '3.21%', 0.001 -> '0.1%'."""
    if rate == 0:
        return "0%"
    return f"{100 * rate:.3g}%"


def _tick_label(rate: float) -> str:
    p = 100 * rate
    if p < 1e-4:
        return f"$10^{{{round(math.log10(p))}}}$%"
    return f"{p:g}%"


def _probit(rates: np.ndarray, lo: float) -> np.ndarray:
    from scipy.special import ndtri

    return ndtri(np.clip(rates, lo, 1.0 - lo))


def thin_staircase(x: np.ndarray, y: np.ndarray, keep=(), grid: int = THIN_GRID) -> np.ndarray:
    """Indices of the vertices of a monotone staircase ``(x, y)`` worth drawing (sorted, unique).

    Splits the bounding box of the points into ``grid`` x ``grid`` cells and keeps the first and last
    vertex of every run of consecutive vertices in one cell, the first and last vertex overall and the
    indices in ``keep``. For a monotone path (as a DET curve is) that is at most ``4 * grid + 2`` vertices
    plus ``keep``, and the thinned path stays within the cells of the exact one.
    """
    n = x.size
    if n <= 2:
        return np.arange(n)

    def cells(v: np.ndarray) -> np.ndarray:
        lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            return np.zeros(v.size, np.int64)
        return np.minimum(((v - lo) * (grid / (hi - lo))).astype(np.int64), grid - 1)

    cx, cy = cells(x), cells(y)
    change = np.flatnonzero((cx[1:] != cx[:-1]) | (cy[1:] != cy[:-1]))
    starts = np.concatenate([[0], change + 1])
    ends = np.concatenate([change, [n - 1]])
    return np.unique(np.concatenate([starts, ends, np.asarray(keep, np.int64)]))


def _upper_limit(rates, lo: float) -> float:
    """The probit upper axis limit: the first of _DET_UPPER that leaves a margin above every rate."""
    from scipy.special import ndtri

    need = max([r for r in rates if np.isfinite(r)], default=0.0)
    cap = 1.0 - lo
    for u in _DET_UPPER:
        if u >= cap:
            break
        if ndtri(u) >= ndtri(min(need, cap)) + 0.25:
            return float(ndtri(u))
    return float(ndtri(cap)) + 0.1


def _set_det_ticks(axis, lo: float, hi: float, zero: float, one: float) -> None:
    """Percent ticks inside [lo, hi] (probits), with "0" and "100%" where rates of 0 and 1 are drawn."""
    from scipy.special import ndtri

    ticks = [(zero, "0")] if lo <= zero <= hi else []
    ticks += [(float(ndtri(t)), _tick_label(t)) for t in _DET_TICKS
              if lo <= ndtri(t) <= hi and zero + _TICK_GAP <= ndtri(t) <= one - _TICK_GAP]
    if lo <= one <= hi:
        ticks.append((one, "100%"))
    axis.set_ticks([p for p, _ in ticks], labels=[lab for _, lab in ticks])
    axis.set_ticks([], minor=True)


def det_frame(ax, lo_x: float, lo_y: float, x_hi: float, y_hi: float, title: str | None) -> None:
    """The DET axes around the curves: the FMR = FNMR diagonal, probit limits from the clipped rates ``lo_x``,
    ``lo_y`` (module docstring) up to ``x_hi``, ``y_hi``, percent ticks, grid, labels and title."""
    from scipy.special import ndtri

    x_lo, y_lo = float(ndtri(lo_x)) - 0.15, float(ndtri(lo_y)) - 0.15
    ax.axline((0.0, 0.0), slope=1.0, color="0.55", lw=0.9, ls="--", gid="det-eer-line", zorder=2,
              label="FMR = FNMR (EER)")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    _set_det_ticks(ax.xaxis, x_lo, x_hi, float(ndtri(lo_x)), float(ndtri(1 - lo_x)))
    _set_det_ticks(ax.yaxis, y_lo, y_hi, float(ndtri(lo_y)), float(ndtri(1 - lo_y)))
    ax.tick_params(axis="x", labelrotation=45)
    for lab in ax.get_xticklabels():
        lab.set_horizontalalignment("right")
        lab.set_rotation_mode("anchor")
    ax.grid(True, color="0.85", lw=0.7)
    ax.set_axisbelow(True)
    ax.set_xlabel("False match rate (FMR)")
    ax.set_ylabel("False non-match rate (FNMR)")
    if title:
        ax.set_title(title)


def histogram_frame(fig, ax, own: bool, title: str | None, path) -> Figure:
    """Labels, grid, title and legend of a score-histogram figure; written to ``path`` when given."""
    ax.set_xlabel("Comparison score")
    ax.set_ylabel("Density")
    ax.set_ylim(bottom=0)
    ax.margins(x=0.02)
    ax.grid(True, axis="y", color="0.9", lw=0.7)
    ax.set_axisbelow(True)
    if title:
        ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    _legend(fig, ax, own, handles, labels, ncols=2)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_det(systems, path=None, *, title: str | None = None, marks=(0.01, 0.001), higher_is_genuine: bool = True,
             fta: str = "reject", ax=None, thin_above: int | None = THIN_ABOVE) -> Figure:
    """DET curves (FNMR against FMR on normal-deviate axes) of one or more systems; returns the Figure.

    ``systems``: a mapping ``name -> (genuine, impostor)`` or a sequence of ``(name, genuine, impostor)``;
    each system gets its own colour, its exact DET step curve and markers at its strict operating points
    at the ``marks`` FMR targets (default FMR100 and FMR1000), whose FNMRs appear in its legend entry, e.g.
    ``"ArcFace (FNMR 3.2% @ FMR 1%, 7.5% @ FMR 0.1%)"`` (an entry ending in ``*`` is below the FMR
    resolution 1/N_I: the strict rule gives FMR = 0 there). The dashed diagonal is FMR = FNMR: a curve
    crosses it at its EER. ``higher_is_genuine`` and ``fta`` are passed to :func:`~frmask.metrics.det_curve`
    and :func:`~frmask.metrics.fnmr_at_fmr`. ``ax``: draw on these axes instead of a new figure.
    ``thin_above``: curves with more points are thinned for drawing (None: never), see the module
    docstring. ``path``: also write the figure there with :func:`save_figure`.

    Raises ValueError (:class:`~frmask.metrics.ScoreError` for bad scores, naming the system) on empty
    or malformed input.
    """
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    from frmask.metrics._scores import ScoreError, prepare_scores
    from frmask.metrics.rates import det_curve, fnmr_at_fmr

    items = _systems(systems)
    marks = () if marks is None else tuple(float(t) for t in np.atleast_1d(np.asarray(marks, dtype=float)))
    if len(marks) > len(_MARKERS):
        raise ValueError(f"at most {len(_MARKERS)} marks can be drawn, got {len(marks)}")

    curves, points, sizes = [], [], []
    for name, g, i in items:
        try:
            c = det_curve(g, i, higher_is_genuine=higher_is_genuine, fta=fta)
            ops = [fnmr_at_fmr(g, i, t, higher_is_genuine=higher_is_genuine, fta=fta) for t in marks]
            ref = ops[0] if ops else prepare_scores(g, i, higher_is_genuine=higher_is_genuine, fta=fta)
        except ScoreError as e:
            raise ScoreError(f"system {name!r}: {e}") from e
        curves.append(c)
        points.append(ops)
        sizes.append((ref.n_genuine, ref.n_impostor))

    # Half the finest rate step over all systems: where rates of 0 (and 1) are drawn.
    lo_x = 0.5 / max(n_i for _, n_i in sizes)
    lo_y = 0.5 / max(n_g for n_g, _ in sizes)

    own = ax is None
    fig, ax = _new_axes(ax, (7.0, 7.4))
    n = len(items)
    colors = colormaps["tab10"].colors if n <= 10 else colormaps["turbo"](np.linspace(0.05, 0.95, n))
    eer_like = []
    for k, ((name, _, _), c, ops) in enumerate(zip(items, curves, points)):
        x, y = _probit(c.fmr, lo_x), _probit(c.fnmr, lo_y)
        if thin_above is not None and c.fmr.size > thin_above:
            at = [np.flatnonzero((c.fmr == op.fmr) & (c.fnmr == op.fnmr))[:1] for op in ops]
            idx = thin_staircase(x, y, keep=np.concatenate([np.zeros(0, np.int64), *at]))
            x, y = x[idx], y[idx]
        text = ", ".join(f"{_pct(op.fnmr)} @ FMR {_pct(t)}" + ("*" if op.below_resolution else "")
                         for t, op in zip(marks, ops))
        label = f"{name} (FNMR {text})" if text else name
        color = colors[k]
        ax.plot(x, y, drawstyle="steps-pre", color=color, lw=1.6, label=label, gid=f"det-curve-{k}", zorder=3)
        for j, op in enumerate(ops):
            ax.plot(_probit(np.array([op.fmr]), lo_x), _probit(np.array([op.fnmr]), lo_y), linestyle="none",
                    marker=_MARKERS[j], ms=_mark_size(j), mfc=color, mec="white", mew=1.0, gid=f"det-mark-{k}-{j}",
                    label="_nolegend_", zorder=4)
        cross = int(np.argmax(c.fnmr >= c.fmr))  # first threshold where FNMR catches up with FMR
        eer_like.append(max(c.fmr[cross], c.fnmr[cross]))

    det_frame(ax, lo_x, lo_y, _upper_limit([*eer_like, *marks], lo_x),
              _upper_limit([*eer_like, *(op.fnmr for ops in points for op in ops)], lo_y), title)

    handles, labels = ax.get_legend_handles_labels()
    for j, t in enumerate(marks):
        handles.append(Line2D([], [], linestyle="none", marker=_MARKERS[j], ms=_mark_size(j), mfc="0.4", mec="white"))
        labels.append(f"strict operating point at FMR {_pct(t)}")
    _legend(fig, ax, own, handles, labels, ncols=1)

    if path is not None:
        save_figure(fig, path)
    return fig


# ----------------------------------------------------------------------------------------- histograms

def _finite_scores(values, name: str) -> tuple[np.ndarray, int]:
    """Acquired (non-NaN) scores as float64 and the number of NaN (FTA) scores removed."""
    from frmask.metrics._scores import ScoreError, as_score_array

    a = as_score_array(values, name)
    if a.size == 0:
        raise ScoreError(f"the {name} score set is empty")
    a = a.astype(np.float64, copy=False)
    nan = np.isnan(a)
    inf_at = np.flatnonzero(np.isinf(a))
    if inf_at.size:
        raise ScoreError(f"{name} score at index {inf_at[0]} is {a[inf_at[0]]}: scores must be finite "
                         f"(use NaN for a failure to acquire)")
    n_nan = int(np.count_nonzero(nan))
    if n_nan == a.size:
        raise ScoreError(f"no {name} score was acquired (all {n_nan} are NaN)")
    return (a[~nan] if n_nan else a), n_nan


def _thresholds(threshold) -> list[tuple[float, str]]:
    """``[(value, label), ...]`` from a number, an OperatingPoint, a sequence of those or a mapping."""
    def one(v, label=None):
        if hasattr(v, "threshold"):  # an OperatingPoint
            t = float(v.threshold)
            if label is None:
                target = getattr(v, "target", float("nan"))
                label = f"threshold at FMR {_pct(target)}" if np.isfinite(target) else "threshold"
        else:
            t = float(v)
            label = label or "threshold"
        if not np.isfinite(t):
            raise ValueError(f"threshold {t} is not finite")
        return t, f"{label} = {t:.4g}"

    if threshold is None:
        return []
    if isinstance(threshold, Mapping):
        return [one(v, str(k)) for k, v in threshold.items()]
    if hasattr(threshold, "threshold") or isinstance(threshold, (str, bytes)) or np.ndim(threshold) == 0:
        return [one(threshold)]
    return [one(v) for v in threshold]


def plot_score_histograms(genuine, impostor, path=None, *, title: str | None = None, bins=100, threshold=None,
                          ax=None) -> Figure:
    """Overlaid genuine and impostor score histograms (densities on shared bins); returns the Figure.

    NaN scores (failures to acquire) are left out of the histograms and counted in the legend. ``bins``:
    a number of equal bins over the range of all acquired scores, or explicit bin edges. ``threshold``:
    vertical line(s) to draw: a number, an :class:`~frmask.metrics.OperatingPoint` (e.g.
    ``fnmr_at_fmr(g, i, 0.01)``, labelled with its FMR target), a sequence of those, or a mapping
    ``label -> value``. ``ax``: draw on these axes. ``path``: also write the figure with :func:`save_figure`.
    Raises ValueError (:class:`~frmask.metrics.ScoreError`) for empty, all-NaN or infinite scores.
    """
    g, g_nan = _finite_scores(genuine, "genuine")
    i, i_nan = _finite_scores(impostor, "impostor")
    lines = _thresholds(threshold)
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise ValueError(f"bins must be at least 1, got {bins}")
        lo = min(g.min(), i.min())
        hi = max(g.max(), i.max())
        edges = np.histogram_bin_edges(np.array([lo, hi]), bins=int(bins))
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError("bins must be a number or increasing bin edges (at least 2)")

    own = ax is None
    fig, ax = _new_axes(ax, (7.0, 5.0))
    for scores, n_nan, name, color in ((i, i_nan, "Impostor", "tab:red"), (g, g_nan, "Genuine", "tab:blue")):
        dens, _ = np.histogram(scores, bins=edges, density=True)
        label = f"{name} (n = {scores.size:,}" + (f"; {n_nan:,} FTA excluded)" if n_nan else ")")
        ax.stairs(dens, edges, fill=True, color=color, alpha=0.25, lw=0)
        ax.stairs(dens, edges, color=color, lw=1.3, label=label)
    styles = ("--", ":", "-.", (0, (5, 1, 1, 1)))
    for k, (t, label) in enumerate(lines):
        ax.axvline(t, color="0.15", lw=1.1, ls=styles[k % len(styles)], label=label, zorder=3)
    return histogram_frame(fig, ax, own, title, path)
