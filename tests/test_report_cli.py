"""verification_report / pairs_report and the `frmask metrics` command, end to end."""

import importlib
import json
import sys
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import frmask.metrics as m
from frmask.cli import main
from frmask.metrics import conventions as conv


def _pyeer_stats():
    try:
        import pkg_resources  # noqa: F401
    except ImportError:  # pyeer imports it at module level; setuptools >= 81 dropped it
        sys.modules["pkg_resources"] = types.ModuleType("pkg_resources")
        try:
            return importlib.import_module("pyeer.eer_info").get_eer_stats
        finally:
            del sys.modules["pkg_resources"]
    return importlib.import_module("pyeer.eer_info").get_eer_stats


@pytest.mark.parametrize("seed", range(6))
def test_pyeer_convention_reproduces_pyeer(seed):
    get_eer_stats = _pyeer_stats()
    rng = np.random.default_rng(seed)
    if seed % 2:
        g, i = rng.integers(3, 10, 400).astype(float), rng.integers(0, 6, 3000).astype(float)  # heavy ties
    else:
        g, i = rng.normal(0.6, 0.15, 400), rng.normal(0.1, 0.12, 3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = get_eer_stats(g, i)
    rep = m.verification_report(g, i, convention="pyeer")
    assert (rep.fmr100, rep.fmr1000, rep.eer) == (ref.fmr100, ref.fmr1000, ref.eer)
    assert (rep["fmr100_threshold"], rep["fmr1000_threshold"]) == (ref.fmr100_th, ref.fmr1000_th)
    iso = m.verification_report(g, i)
    assert iso["fmr100_fmr"] <= 0.01 and iso["fmr1000_fmr"] <= 0.001  # strict: never above the target


def test_insightface_convention_and_exact_kfold():
    rng = np.random.default_rng(1)
    labels = np.tile(np.r_[np.ones(300), np.zeros(300)], 10).astype(int)  # LFW layout: 10 folds of 300+300
    scores = np.where(labels == 1, rng.normal(0.55, 0.15, labels.size), rng.normal(0.05, 0.12, labels.size))
    rep = m.pairs_report(scores, labels, convention="insightface", far=0.001)
    mean, std, _, _ = conv.insightface_accuracy(conv.cosine_to_squared_distance(scores), labels.astype(bool))
    val, _, _ = conv.insightface_val_at_far(conv.cosine_to_squared_distance(scores), labels.astype(bool), far=0.001)
    assert (rep["kfold_accuracy"], rep["kfold_std"], rep.tpr_at_far) == (mean, std, val)
    exact = m.pairs_report(scores, labels)
    kf = m.kfold_accuracy(scores, labels, 10)
    assert exact["kfold_accuracy"] == kf.mean
    assert exact.max_accuracy >= kf.mean - 1e-12  # best threshold on all pairs bounds the held-out mean
    with pytest.raises(m.ScoreError, match="pairs_report"):
        m.verification_report(scores[labels == 1], scores[labels == 0], convention="insightface")


def test_report_agrees_with_each_function_and_converts():
    rng = np.random.default_rng(5)
    g = rng.normal(0.5, 0.2, 2000).astype(np.float32)
    i = rng.normal(0.0, 0.15, 50000).astype(np.float32)
    g[:3] = np.nan
    rep = m.verification_report(g, i, fmr_targets=(1e-4,))
    assert rep.fmr100 == m.fnmr_at_fmr(g, i, 0.01).fnmr
    assert rep.fmr1000 == m.fnmr_at_fmr(g, i, 0.001).fnmr
    assert rep["fnmr_at_fmr_0.0001"] == m.fnmr_at_fmr(g, i, 1e-4).fnmr
    assert rep.tpr_at_far == m.tpr_at_far(g, i, 0.002)
    assert rep.acc_at_far == m.accuracy_at_threshold(g, i, rep["far_threshold"])
    assert rep.eer == m.eer(g, i) and rep.fdr == m.fdr(g, i)
    assert (rep.max_accuracy, rep["max_accuracy_threshold"]) == m.max_accuracy(g, i)
    assert rep.n_fta == 3 and rep.n_genuine == 2000
    row = rep.to_frame("model")
    assert row.index.tolist() == ["model"] and list(row.columns[:10]) == list(m.STABLE_KEYS)
    back = json.loads(rep.to_json())
    assert back["eer"] == rep.eer and back["notes"] == list(rep.notes)


def test_report_ci_by_subject():
    rng = np.random.default_rng(2)
    subj = np.repeat(np.arange(20), 5)
    g = rng.normal(0.6, 0.1, subj.size)
    pairs = rng.integers(0, 20, (800, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    i = rng.normal(0.1, 0.1, len(pairs))
    rep = m.verification_report(g, i, ci=0.9, genuine_subjects=subj, impostor_subjects=pairs, n_boot=50, seed=3)
    again = m.verification_report(g, i, ci=0.9, genuine_subjects=subj, impostor_subjects=pairs, n_boot=50, seed=3)
    assert rep.to_dict() == again.to_dict()
    for key in ("eer", "fmr100", "max_accuracy"):
        assert rep[f"{key}_ci_low"] <= rep[f"{key}_ci_high"]


# ---- the command line -------------------------------------------------------------------------------------

@pytest.fixture
def runner():
    return CliRunner()


def _write(tmp_path, text, name="scores.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_cli_example_default(runner):
    res = runner.invoke(main, ["metrics"])
    assert res.exit_code == 0, res.output
    assert "bundled example" in res.output and "fmr100" in res.output and "k-fold accuracy" in res.output


def test_cli_outputs(runner, tmp_path):
    csv_in = _write(tmp_path, "score,label\n0.9,1\n0.8,1\n0.8,1\n0.6,1\n0.3,1\n0.7,0\n0.5,0\n0.5,0\n0.4,0\n"
                              "0.3,0\n0.2,0\n0.1,0\n")
    res = runner.invoke(main, ["metrics", str(csv_in), "--far", "0.15", "--json", str(tmp_path / "r.json"),
                               "--csv", str(tmp_path / "r.csv"), "--folds", "2"])
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["tpr_at_far"] == 0.8 and d["max_accuracy"] == 10 / 12 and d["n_genuine"] == 5
    row = pd.read_csv(tmp_path / "r.csv")
    assert row["eer"].iloc[0] == pytest.approx(6 / 35)
    res = runner.invoke(main, ["metrics", str(csv_in), "--json", "-", "--folds", "2"])
    assert json.loads(res.output)["n_impostor"] == 7
    # distances: 1 - s gives the same rates
    dist = _write(tmp_path, "score,label\n" + "\n".join(
        f"{1 - float(line.split(',')[0]):.1f},{line.split(',')[1]}"
        for line in csv_in.read_text().splitlines()[1:]), "dist.csv")
    res = runner.invoke(main, ["metrics", str(dist), "--distance", "--far", "0.15", "--json", "-", "--folds", "2"])
    assert json.loads(res.output)["tpr_at_far"] == 0.8


@pytest.mark.parametrize("text, message", [
    ("score,label\n0.5,1\nabc,0\n", "line 3: score 'abc' is not a number"),
    ("score,label\n0.5,1\n\n0.2,0\n0.1,2\n", "line 5: label '2' must be 1"),
    ("score,label\n0.5,1\n0.2,0\ninf,0\n", "line 4: score 'inf' is infinite"),
    ("score,lab\n0.5,1\n", "missing column(s) 'label'"),
    ("", "the file is empty"),
    ("score,label\n0.5,1\n0.4,1\n", "impostor score set is empty"),
    ("score,label,subject_a,subject_b\n0.5,1,a,b\n0.1,0,a,c\n", "line 2: genuine pair compares subjects 'a' and 'b'"),
])
def test_cli_bad_files(runner, tmp_path, text, message):
    p = _write(tmp_path, text)
    out = tmp_path / "out.json"
    res = runner.invoke(main, ["metrics", str(p), "--json", str(out)])
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert not out.exists() and list(tmp_path.iterdir()) == [p]


def test_cli_bad_options(runner, tmp_path):
    p = _write(tmp_path, "score,label\n0.5,1\n0.2,0\n")
    for args, message in ((["--fmr", "1.5"], "between 0 and 1"), (["--far", "0"], "between 0 and 1"),
                          (["--fta", "error"], None)):
        res = runner.invoke(main, ["metrics", str(p), *args])
        if message:
            assert res.exit_code == 1 and message in res.output
    nan = _write(tmp_path, "score,label\n0.5,1\n,0\n0.1,0\n", "nan.csv")
    res = runner.invoke(main, ["metrics", str(nan), "--fta", "error", "--folds", "2"])
    assert res.exit_code == 1 and "NaN" in res.output
    res = runner.invoke(main, ["metrics", str(tmp_path / "missing.csv")])
    assert res.exit_code == 1 and "no such file" in res.output


def test_python_dash_m_and_version():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "frmask", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"frmask, version {importlib.import_module('frmask').__version__}"


def test_cli_histogram_legend_names_each_threshold_once(runner, tmp_path, monkeypatch):
    """Issue 15 item 9: the legend printed the threshold twice ("threshold at FMR 1 % = 0.3017 = 0.3017")."""
    import frmask.metrics.plots as plots

    figures = []
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: figures.append(fig) or save(fig, path, **kw))
    res = runner.invoke(main, ["metrics", "--json", str(tmp_path / "r.json"), "--hist", str(tmp_path / "h.png")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    (fig,) = figures
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    lines = [t.get_text() for lg in legends for t in lg.get_texts() if t.get_text().startswith("threshold")]
    assert lines == [f"threshold at FMR 1 % = {report['fmr100_threshold']:.4g}",
                     f"threshold at FMR 0.1 % = {report['fmr1000_threshold']:.4g}"]


def test_cli_plots(runner, tmp_path):
    det, hist = tmp_path / "det.png", tmp_path / "hist.svg"
    res = runner.invoke(main, ["metrics", "--plot", str(det), "--hist", str(hist)])
    assert res.exit_code == 0, res.output
    assert det.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in hist.read_bytes()[:400]
    res = runner.invoke(main, ["metrics", "--plot", str(tmp_path / "det.bmp")])
    assert res.exit_code == 2 and "use a .png, .pdf or .svg" in res.output
    assert not (tmp_path / "det.bmp").exists()
