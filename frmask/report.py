"""Run folders of ``frmask score`` and side-by-side comparisons (``frmask report``).

A run folder holds:

- ``metrics.json``: ``{"run": provenance, "all": report, "<scenario>": report, ...}`` where each report is
  :meth:`frmask.metrics.VerificationReport.to_dict` plus its ``notes``;
- ``scores.csv``: one row per pair (``pair, image_a, image_b, subject_a, subject_b, label, score,
  scenarios``), NaN score for a failure to acquire; ``failures.csv`` (``image, reason``) when any;
- ``report.md``: the table of the paper's columns per scenario; ``det.png`` (one curve per scenario) and
  ``histograms.png`` (genuine/impostor scores per scenario);
- ``gallery.json`` and ``gallery/``: the gallery of the errors (:mod:`frmask.report_gallery`);
- ``report.html``: the page of all of it for a browser, one self-contained file (:mod:`frmask.report_html`).

The folder is built beside its destination and renamed into place, so an interrupted run leaves nothing
half written. It carries a manifest (``.frmask-manifest.json``) of what it holds; an existing ``out`` is
replaced only when it holds nothing else, unchanged (:func:`_replace_dir`), so no user file is ever deleted.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from frmask import _atomic, _atomic_folder
from frmask.report_gallery import SCORE_FORMAT

#: (column title, report key, kind) of the tables, in the paper's order
COLUMNS = (
    ("FNMR@FMR1%", "fmr100", "pct"),
    ("FNMR@FMR0.1%", "fmr1000", "pct"),
    ("EER", "eer", "pct"),
    ("FDR", "fdr", "num"),
    ("TPR@FAR", "tpr_at_far", "pct"),
    ("ACC@FAR", "acc_at_far", "pct"),
    ("best ACC", "max_accuracy", "pct"),
    ("10-fold ACC", "kfold_accuracy", "pct"),
)


_TARGETS = {"fmr100": 0.01, "fmr1000": 0.001}
STAR_NOTE = ("* the FMR target is below the resolution 1/N_impostor: the strict operating point is the threshold "
             "with no false match at all.")


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path: Path, doc) -> None:
    """A run folder's JSON file (``metrics.json``, ``effect.json``): indented, non-finite numbers as null."""
    path.write_text(json.dumps(_json_safe(doc), indent=2, allow_nan=False) + "\n")


def write_failures(path: Path, images, failures: dict[int, str]) -> None:
    """``failures.csv`` (``image, reason``) of the failures to acquire ``{image index: reason}``, by index;
    ``images``: the protocol's :class:`~frmask.protocols.ImageEntry` list (their keys name the images)."""
    import pandas as pd

    idx = sorted(failures)
    pd.DataFrame({"image": [images[i].key for i in idx], "reason": [failures[i] for i in idx]}).to_csv(
        path, index=False)


def _cell(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * value:.2f}" if kind == "pct" else f"{value:.3f}"


def present_columns(rows: list[tuple[str, dict]]) -> list[tuple[str, str, str]]:
    """The :data:`COLUMNS` (title, key, kind) that some report of ``rows`` has, titles naming the FAR."""
    present = [c for c in COLUMNS if any(d.get(c[1]) is not None for _, d in rows)]
    far = next((d.get("far") for _, d in rows if d.get("far") is not None), None)
    return [(t.replace("FAR", f"FAR{100 * far:g}%") if far is not None and t.endswith("@FAR") else t, key, kind)
            for t, key, kind in present]


def below_resolution(d: dict, key: str) -> bool:
    """Whether the FMR target behind ``key`` of report ``d`` is below 1/N_impostor (a starred cell)."""
    target = _TARGETS.get(key, d.get("far") if key in ("tpr_at_far", "acc_at_far") else None)
    return bool(target is not None and d.get("n_impostor") and target * d["n_impostor"] < 1)


def markdown_table(rows: list[tuple[str, dict]], *, first: str = "scenario") -> str:
    """A Markdown table of reports: ``rows`` is ``[(row label, report dict), ...]``; rates in percent.
    Columns absent from every report (e.g. 10-fold accuracy outside the .bin benchmarks) are left out."""
    present = present_columns(rows)
    titles = [t for t, _, _ in present]
    head = [first, "genuine", "impostor", "FTA", *titles]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    starred = False
    for label, d in rows:
        cells = [label, f"{d.get('n_genuine', 0):,}", f"{d.get('n_impostor', 0):,}", str(d.get("n_fta", 0))]
        for _, key, kind in present:
            cell = _cell(d.get(key), kind)
            if below_resolution(d, key) and cell != "–":
                cell += "*"
                starred = True
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    notes = "Rates in %; FDR = (mu_G - mu_I)^2 / (sigma_G^2 + sigma_I^2)."
    if starred:
        notes += " " + STAR_NOTE
    return "\n".join(lines) + "\n\n" + notes + "\n"


def scores_frame(result):
    """The per-pair table of a :class:`~frmask.scoring.ScoreResult` (pandas DataFrame)."""
    import pandas as pd

    p = result.protocol
    keys = np.array([e.key for e in p.images], dtype=object)
    names = [n for n in p.scenario_names() if n != "all"]
    scen = [";".join(n for n in names if p.scenarios[n][k]) for k in range(p.n_pairs)]
    pair = getattr(p, "pair_ids", None)  # a subset of a larger protocol's pairs keeps their numbers
    frame = pd.DataFrame({"pair": np.arange(p.n_pairs) if pair is None else pair, "image_a": keys[p.pair_a],
                          "image_b": keys[p.pair_b]})
    if p.subjects_a is not None:
        frame["subject_a"], frame["subject_b"] = p.subjects_a, p.subjects_b
    frame["label"] = p.genuine.astype(np.int8)
    frame["score"] = result.scores
    if names:
        frame["scenarios"] = scen
    return frame


#: what ``frmask score`` wrote in a run folder before run folders carried a manifest
_LEGACY_RUN_FILES = frozenset({"metrics.json", "scores.csv", "failures.csv", "report.md", "det.png",
                               "histograms.png"})


def _legacy_run_files(folder: Path):
    """The names an older ``frmask score`` wrote in ``folder`` (one without a manifest), or None when it
    does not look like such a run (no ``metrics.json``)."""
    return _LEGACY_RUN_FILES if (folder / "metrics.json").is_file() else None


def check_out_dir(out) -> None:
    """ValueError unless ``out`` can receive a run folder (see :func:`_replace_dir`); call it before long work."""
    _atomic_folder.check_replaceable(out, _legacy_run_files)


def _replace_dir(tmp: Path, out: Path) -> None:
    """Put the finished run folder ``tmp`` (built beside ``out``) at ``out``, never deleting a user's file.

    ``out`` must not exist, or be empty, or be a run folder frmask wrote that holds nothing else, unchanged:
    its manifest (written here, from ``tmp``'s contents, just before the rename) lists every entry; a run
    folder of an older frmask without a manifest may hold only the files ``frmask score`` wrote then.
    Anything else is refused with a ValueError naming the entries. ``out`` must not be the current folder
    or hold it. Stale temporary folders of ``out`` left by a killed run are removed (:mod:`frmask._temps`).
    """
    _atomic_folder.replace_dir(tmp, out, legacy=_legacy_run_files)


@contextmanager
def building_dir(out) -> Iterator[Path]:
    """A new temporary folder beside ``out``, to write a run folder into: when the block ends normally it is
    renamed into place (:func:`_replace_dir`), when it raises it is removed, so nothing half written is left."""
    out = Path(out)
    check_out_dir(out)
    tmp = _atomic_folder.make_temp_dir(out)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_atomic.umask())
        _replace_dir(tmp, out)
    except BaseException:
        _atomic_folder.discard_temp_dir(tmp)
        raise


def write_run(result, out, *, title: str | None = None, plots: bool = True, gallery: int = 12) -> Path:
    """Write the run folder ``out`` of a :class:`~frmask.scoring.ScoreResult` (module docstring);
    ``gallery``: how many genuine and impostor pairs the gallery of the errors shows (0: no gallery)."""
    from frmask.report_gallery import gallery_of_result
    from frmask.report_html import write_report_html

    out = Path(out)
    with building_dir(out) as tmp:
        metrics = {"run": result.run}
        for name, rep in result.reports.items():
            metrics[name] = {**rep.to_dict(), "notes": list(rep.notes)}
        write_json(tmp / "metrics.json", metrics)
        scores_frame(result).to_csv(tmp / "scores.csv", index=False, float_format=SCORE_FORMAT)
        if result.failures:
            write_failures(tmp / "failures.csv", result.protocol.images, result.failures)
        title = title or f"{result.run.get('model', {}).get('name', 'model')} on {result.protocol.name}"
        rows = [(name, metrics[name]) for name in result.reports]
        md = f"# {title}\n\n{result.protocol.description}\n\n" + markdown_table(rows)
        (tmp / "report.md").write_text(md)
        if plots:
            _run_plots(result, tmp, title)
        if gallery:
            gallery_of_result(result, tmp, k=gallery)
        write_report_html(tmp)
    return out


def _split(scores: np.ndarray, genuine: np.ndarray):
    return scores[genuine], scores[~genuine]


def _run_plots(result, folder: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    from frmask.metrics.plots import plot_det, plot_score_histograms, save_figure

    if getattr(result, "accumulator", None) is not None:  # scores are a subset: plot the whole set from it
        _streamed_plots(result.accumulator, folder, title)
        return
    p = result.protocol
    systems = [(name, *_split(result.scores[p.selection(name)], p.genuine[p.selection(name)]))
               for name in result.reports]
    fig = plot_det(systems, title=f"DET: {title}")
    save_figure(fig, folder / "det.png")
    plt.close(fig)
    n = len(systems)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    for ax, (name, g, i) in zip(axes[0], systems):
        if np.isfinite(g).any() and np.isfinite(i).any():
            plot_score_histograms(g, i, ax=ax, title=name, bins=40)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, folder / "histograms.png")
    plt.close(fig)


def _streamed_plots(acc, folder: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    from frmask.metrics.plots_streamed import plot_streamed_det, plot_streamed_histograms

    for fig in (plot_streamed_det(acc, folder / "det.png", title=f"DET: {title}"),
                plot_streamed_histograms(acc, folder / "histograms.png", title=title)):
        plt.close(fig)


def read_run(folder) -> dict:
    """``metrics.json`` of a run folder, with clear errors for a folder that is not a run."""
    folder = Path(folder)
    path = folder / "metrics.json"
    if not path.is_file():
        raise ValueError(f"{folder}: not an frmask run folder (no metrics.json)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or "all" not in data:
        raise ValueError(f"{path}: no 'all' report; not written by frmask score")
    return data


def run_label(folder) -> str:
    """How a run is named in comparisons: its folder name."""
    return Path(folder).resolve().name


def compare_runs(folders, *, scenarios=None):
    """Rows ``(run label, scenario, report dict)`` of several runs, in the order given; ``scenarios``
    restricts the scenarios (default: every scenario of every run)."""
    rows = []
    for folder in folders:
        metrics = read_run(folder)
        label = run_label(folder)
        names = [k for k in metrics if k != "run"]
        if scenarios:
            names = [k for k in names if k in scenarios]
        run = metrics.get("run", {})
        about = {"model": run.get("model", {}).get("name"), "protocol": run.get("protocol", {}).get("name")}
        rows += [(label, name, {**about, **metrics[name]}) for name in names]
    if not rows:
        raise ValueError(f"no scenario {', '.join(scenarios or [])} in these runs")
    return rows


def comparison_frame(rows):
    """A pandas DataFrame of :func:`compare_runs` rows (one row per run and scenario, stable keys)."""
    import pandas as pd

    from frmask.metrics.report import STABLE_KEYS

    keys = ["model", "protocol", *STABLE_KEYS, "kfold_accuracy", "far"]
    return pd.DataFrame([{"run": r, "scenario": s, **{k: d.get(k) for k in keys}} for r, s, d in rows])


def read_scores(folder):
    """The ``scores.csv`` of a run as a DataFrame (checked columns)."""
    import pandas as pd

    path = Path(folder) / "scores.csv"
    if not path.is_file():
        raise ValueError(f"{folder}: no scores.csv in this run")
    frame = pd.read_csv(path)
    for column in ("label", "score"):
        if column not in frame:
            raise ValueError(f"{path}: no {column!r} column")
    return frame


def comparison_det(folders, path, *, scenarios=None) -> None:
    """One DET figure with every run (and scenario) of ``folders``, written to ``path``; each run's
    ``metrics.json`` and ``scores.csv`` are read once."""
    import matplotlib.pyplot as plt

    from frmask.metrics.plots import plot_det, save_figure

    systems = []
    for folder in folders:
        names = [k for k in read_run(folder) if k != "run" and (not scenarios or k in scenarios)]
        frame = read_scores(folder)
        tags = frame["scenarios"].fillna("").str.split(";") if "scenarios" in frame else None
        for scenario in names:
            part = frame if scenario == "all" else frame[tags.apply(lambda s, n=scenario: n in s)]
            g = part["label"].to_numpy() == 1
            s = part["score"].to_numpy(dtype=np.float64)
            systems.append((f"{run_label(folder)} / {scenario}", s[g], s[~g]))
    if not systems:
        raise ValueError(f"no scenario {', '.join(scenarios or [])} in these runs")
    fig = plot_det(systems, title="DET: " + ", ".join(dict.fromkeys(run_label(f) for f in folders)))
    save_figure(fig, path)
    plt.close(fig)
