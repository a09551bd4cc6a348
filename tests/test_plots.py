"""frmask.metrics.plots: exact DET data on probit axes, strict operating points, histograms, atomic saving."""

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import norm

import frmask.metrics as m
from frmask.metrics import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scores(seed=0, n_g=800, n_i=20000, mu_g=0.6, quantize=None):
    rng = np.random.default_rng(seed)
    g, i = rng.normal(mu_g, 0.1, n_g), rng.normal(0.1, 0.1, n_i)
    if quantize:  # ties within and across the sets
        g, i = np.round(g, quantize), np.round(i, quantize)
    return g, i


def line(fig, gid):
    found = [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


def legend_texts(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def probit(rates, n):
    lo = 0.5 / n
    return norm.ppf(np.clip(rates, lo, 1 - lo))


class TestDetData:
    def test_curve_is_the_exact_det_curve_in_probit_space(self):
        g, i = scores(quantize=2)
        fig = plots.plot_det({"A": (g, i)})
        c = m.det_curve(g, i)
        ln = line(fig, "det-curve-0")
        assert ln.get_drawstyle() == "steps-pre"
        np.testing.assert_array_equal(ln.get_xdata(), probit(c.fmr, i.size))
        np.testing.assert_array_equal(ln.get_ydata(), probit(c.fnmr, g.size))
        # Rates of 0 are drawn half the finest step below the smallest non-zero rate, inside the axes.
        ax = fig.axes[0]
        assert ax.get_xlim()[0] < norm.ppf(0.5 / i.size) < norm.ppf(1 / i.size)
        assert ax.get_ylim()[0] < norm.ppf(0.5 / g.size) < norm.ppf(1 / g.size)

    def test_marks_sit_at_the_strict_operating_points(self):
        g, i = scores(quantize=2)  # coarse ties: the strict rule differs from "nearest FMR"
        fig = plots.plot_det({"A": (g, i)}, marks=(0.01, 0.001))
        c = m.det_curve(g, i)
        for j, target in enumerate((0.01, 0.001)):
            op = m.fnmr_at_fmr(g, i, target)
            # Independent check of the strict rule on the exact curve: lowest FNMR with FMR <= target.
            assert op.fnmr == c.fnmr[c.fmr <= target].min() and op.fmr <= target
            mk = line(fig, f"det-mark-0-{j}")
            assert mk.get_xdata()[0] == probit(np.array([op.fmr]), i.size)[0]
            assert mk.get_ydata()[0] == probit(np.array([op.fnmr]), g.size)[0]
            # ... and each mark is a vertex of the drawn curve.
            ln = line(fig, "det-curve-0")
            assert np.any((ln.get_xdata() == mk.get_xdata()[0]) & (ln.get_ydata() == mk.get_ydata()[0]))
        fnmr100, fnmr1000 = (m.fnmr_at_fmr(g, i, t).fnmr for t in (0.01, 0.001))
        assert f"A (FNMR {100 * fnmr100:.3g}% @ FMR 1%, {100 * fnmr1000:.3g}% @ FMR 0.1%)" in legend_texts(fig)

    def test_several_systems_get_their_own_coloured_curves(self):
        systems = [(f"S{k}", *scores(seed=k, mu_g=0.4 + 0.1 * k)) for k in range(3)]
        fig = plots.plot_det(systems, title="three")
        curves = [line(fig, f"det-curve-{k}") for k in range(3)]
        assert len({ln.get_color() if isinstance(ln.get_color(), str) else tuple(ln.get_color())
                    for ln in curves}) == 3
        n_i = max(i.size for _, _, i in systems)
        for (name, g, i), ln in zip(systems, curves):
            np.testing.assert_array_equal(ln.get_xdata(), probit(m.det_curve(g, i).fmr, n_i))
            assert any(t.startswith(f"{name} (FNMR ") for t in legend_texts(fig))
        line(fig, "det-eer-line")
        assert fig.axes[0].get_title() == "three"
        assert fig.axes[0].get_xlabel() == "False match rate (FMR)"
        assert fig.axes[0].get_ylabel() == "False non-match rate (FNMR)"

    def test_mapping_and_triples_agree_and_distances_mirror_similarities(self):
        g, i = scores()
        a = line(plots.plot_det({"A": (g, i)}), "det-curve-0").get_xydata()
        b = line(plots.plot_det([("A", g, i)]), "det-curve-0").get_xydata()
        d = line(plots.plot_det({"A": (-g, -i)}, higher_is_genuine=False), "det-curve-0").get_xydata()
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, d)

    def test_ticks_are_percent_labels_inside_the_axes(self):
        g, i = scores(n_g=2000, n_i=200000)
        ax = plots.plot_det({"A": (g, i)}).axes[0]
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels[0] == "0" and {"0.01%", "0.1%", "1%", "10%", "40%"} <= set(labels)
        lo, hi = ax.get_xlim()
        assert all(lo <= p <= hi for p in ax.get_xticks())
        for p, lab in zip(ax.get_xticks()[1:], labels[1:]):
            assert p == pytest.approx(norm.ppf(float(lab.rstrip("%")) / 100))

    def test_fta_and_below_resolution(self):
        g, i = scores(n_i=500)
        g[:5] = np.nan
        fig = plots.plot_det({"A": (g, i)})
        c = m.det_curve(g, i)
        np.testing.assert_array_equal(line(fig, "det-curve-0").get_ydata(), probit(c.fnmr, g.size))
        assert c.fnmr[-2] >= 5 / g.size  # genuine FTAs are non-matches at every threshold
        assert any(t.endswith("@ FMR 0.1%*)") for t in legend_texts(fig))  # 0.1% < 1/500

    def test_draws_on_given_axes(self):
        from matplotlib.figure import Figure

        fig = Figure()
        ax1, ax2 = fig.subplots(1, 2)
        out = plots.plot_det({"A": scores()}, ax=ax2, marks=())
        assert out is fig and not ax1.lines and ax2.get_legend() is not None
        assert [ln.get_gid() for ln in ax2.lines] == ["det-curve-0", "det-eer-line"]


class TestThinning:
    def test_thinned_curve_keeps_shape_ends_and_marks(self):
        g, i = scores(n_g=20000, n_i=300000)
        c = m.det_curve(g, i)
        fig = plots.plot_det({"A": (g, i)}, thin_above=1000)
        ln = line(fig, "det-curve-0")
        x, y = ln.get_xdata(), ln.get_ydata()
        X, Y = probit(c.fmr, i.size), probit(c.fnmr, g.size)
        assert len(X) > 100_000 and len(x) <= 4 * plots.THIN_GRID + 4
        assert (x[0], y[0], x[-1], y[-1]) == (X[0], Y[0], X[-1], Y[-1])
        exact = set(zip(X.tolist(), Y.tolist()))
        assert all(p in exact for p in zip(x.tolist(), y.tolist()))  # only exact vertices
        for j in range(2):
            mk = line(fig, f"det-mark-0-{j}")
            assert np.any((x == mk.get_xdata()[0]) & (y == mk.get_ydata()[0]))

    def test_thinning_stays_within_a_grid_cell(self):
        g, i = scores(n_g=5000, n_i=100000)
        c = m.det_curve(g, i)
        X, Y = probit(c.fmr, i.size), probit(c.fnmr, g.size)
        grid = 200
        idx = plots.thin_staircase(X, Y, keep=[7], grid=grid)
        assert idx[0] == 0 and idx[-1] == X.size - 1 and 7 in idx and np.all(np.diff(idx) > 0)
        cell_x, cell_y = np.ptp(X) / grid, np.ptp(Y) / grid
        # Every dropped vertex lies within one cell of both kept neighbours.
        dropped = np.setdiff1d(np.arange(X.size), idx)
        assert dropped.size > 0.9 * X.size
        pos = np.searchsorted(idx, dropped)
        prev, nxt = idx[pos - 1], idx[pos]
        x, y = X[dropped], Y[dropped]
        for k in (prev, nxt):
            assert np.all(np.abs(x - X[k]) <= cell_x) and np.all(np.abs(y - Y[k]) <= cell_y)


class TestBadInput:
    @pytest.mark.parametrize("systems, match", [
        ({}, "no systems"),
        ([], "no systems"),
        ({"A": ([0.5, 0.6],)}, "system 'A'.*pair"),
        ({"A": ([0.5], [0.1], [0.2])}, "system 'A'.*pair"),
        ({"A": [0.5, 0.6, 0.7]}, "system 'A'"),
        ([("A", [0.5], [0.1]), ([0.5], [0.1])], r"systems\[1\].*triple"),
        (42, "mapping"),
        ({"A": ([], [0.1, 0.2])}, "system 'A'.*genuine score set is empty"),
        ({"A": ([0.5, np.inf], [0.1])}, "system 'A'.*finite"),
    ])
    def test_clear_value_errors(self, systems, match):
        with pytest.raises(ValueError, match=match):
            plots.plot_det(systems)

    def test_histogram_errors(self):
        with pytest.raises(ValueError, match="empty"):
            plots.plot_score_histograms([], [0.1])
        with pytest.raises(ValueError, match="all 2 are NaN"):
            plots.plot_score_histograms([np.nan, np.nan], [0.1])
        with pytest.raises(ValueError, match="finite"):
            plots.plot_score_histograms([0.5, -np.inf], [0.1])
        with pytest.raises(ValueError, match="bins"):
            plots.plot_score_histograms([0.5], [0.1], bins=[1.0, 0.0])

    def test_unknown_suffix_writes_nothing(self, tmp_path):
        with pytest.raises(ValueError, match="suffix"):
            plots.plot_det({"A": scores()}, tmp_path / "det.jpg")
        assert os.listdir(tmp_path) == []


class TestHistograms:
    def test_densities_fta_count_and_thresholds(self, tmp_path):
        g, i = scores()
        g[:3] = np.nan
        op = m.fnmr_at_fmr(g, i, 0.01)
        fig = plots.plot_score_histograms(g, i, tmp_path / "h.png", bins=50, threshold=[op, 0.25], title="H")
        texts = legend_texts(fig)
        assert f"Genuine (n = {g.size - 3:,}; 3 FTA excluded)" in texts
        assert f"Impostor (n = {i.size:,})" in texts
        assert f"threshold at FMR 1% = {op.threshold:.4g}" in texts and "threshold = 0.25" in texts
        ax = fig.axes[0]
        assert [ln.get_xdata()[0] for ln in ax.lines] == [op.threshold, 0.25]
        # Both histograms are densities on the same 50 bins.
        steps = [p for p in ax.patches if not p.get_fill()]
        assert len(steps) == 2
        for p in steps:
            dens, edges = p.get_data().values, p.get_data().edges
            assert edges.size == 51 and np.sum(dens * np.diff(edges)) == pytest.approx(1.0)
        assert (tmp_path / "h.png").read_bytes()[:8] == PNG_MAGIC

    def test_mapping_thresholds_and_given_axes(self):
        from matplotlib.figure import Figure

        fig = Figure()
        ax = fig.add_subplot()
        out = plots.plot_score_histograms([0.5, 0.6], [0.1, 0.2], threshold={"EER": 0.35}, ax=ax)
        assert out is fig and "EER = 0.35" in legend_texts(fig)


class TestSaving:
    def test_png_svg_pdf_are_valid(self, tmp_path):
        import matplotlib.image

        g, i = scores()
        fig = plots.plot_det({"A": (g, i), "B": scores(seed=1, mu_g=0.4)}, tmp_path / "det.png")
        data = (tmp_path / "det.png").read_bytes()
        assert data[:8] == PNG_MAGIC
        img = matplotlib.image.imread(tmp_path / "det.png")
        w, h = fig.get_size_inches() * plots.DPI
        assert img.shape == (round(h), round(w), 4) and 500 < img.shape[1] < 3000
        assert img[..., :3].std() > 0.05  # not blank
        plots.save_figure(fig, tmp_path / "det.SVG")
        svg = (tmp_path / "det.SVG").read_bytes()
        assert svg.startswith(b"<?xml") and b"<svg" in svg[:2000]
        plots.save_figure(fig, str(tmp_path / "det.pdf"))
        assert (tmp_path / "det.pdf").read_bytes()[:5] == b"%PDF-"
        assert sorted(os.listdir(tmp_path)) == ["det.SVG", "det.pdf", "det.png"]  # no temp files
        mask = os.umask(0)
        os.umask(mask)
        assert os.stat(tmp_path / "det.png").st_mode & 0o777 == 0o666 & ~mask

    def test_failed_write_leaves_target_and_folder_untouched(self, tmp_path, monkeypatch):
        fig = plots.plot_score_histograms(*scores())
        target = tmp_path / "h.png"
        target.write_bytes(b"old")

        def broken(fname, **kwargs):
            with open(fname, "wb") as f:
                f.write(b"partial")
            raise RuntimeError("disk full")

        monkeypatch.setattr(fig, "savefig", broken)
        with pytest.raises(RuntimeError, match="disk full"):
            plots.save_figure(fig, target)
        assert os.listdir(tmp_path) == ["h.png"] and target.read_bytes() == b"old"

    def test_overwrites_and_creates_folders(self, tmp_path):
        fig = plots.plot_score_histograms(*scores())
        target = tmp_path / "sub" / "h.svg"
        plots.save_figure(fig, target)
        first = target.read_bytes()
        assert plots.save_figure(fig, target) == target and target.read_bytes()[:5] == first[:5]
        assert os.listdir(tmp_path / "sub") == ["h.svg"]


def test_import_is_light_and_plotting_never_uses_pyplot():
    code = (
        "import sys, numpy as np\n"
        "import frmask.metrics, frmask.metrics.plots as p\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'\n"
        "p.plot_det({'A': (np.array([0.6, 0.7, 0.4]), np.array([0.1, 0.5, 0.2]))})\n"
        "p.plot_score_histograms([0.6, 0.7], [0.1, 0.2])\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    env = {**os.environ, "MPLBACKEND": "TkAgg"}  # an interactive default must not matter
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
