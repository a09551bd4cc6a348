"""``report.html``: the page a person reads in a browser, one self-contained file per run and per comparison.

The page is a view of the run folder's files and nothing else: ``metrics.json`` (provenance, one
verification report per scenario, ``identification`` for identify runs), ``effect.json`` (effect runs),
``gallery.json`` with ``gallery/`` (:mod:`frmask.report_gallery`), ``failures.csv`` and the figures
(``det.png``, ``histograms.png``, ``cmc.png``, ``fnir_fpir.png``, ``effect.png``). Images are inlined as
base64 PNG; there is no external script, font or URL. Every number from a JSON file sits in an element
tied to it (:mod:`frmask.html_parts`). A file that is missing or unreadable (a run from an older frmask,
a folder copied in part) is named in a notice at the top of the page, never a traceback.

:func:`write_report_html` writes a run's page (run writers call it on their temporary folder before the
final rename); :func:`write_comparison_html` writes the page of ``frmask report RUN1 RUN2 ... --html``.
"""

from __future__ import annotations

import json
from pathlib import Path

from frmask.html_parts import esc, figure, fmt, json_table, page, tag, value
from frmask.report_gallery import GALLERY_INDEX

REPORT_HTML = "report.html"

#: (file, caption) of the figures a run may hold, by section
VERIFICATION_FIGURES = (("det.png", "DET curves per scenario, FMR100 and FMR1000 marked on each curve"),
                        ("histograms.png", "Genuine and impostor score histograms per scenario"))
WIDE_FIGURES = {"histograms.png", "effect.png"}  # figures that take the page's whole width
IDENTIFICATION_FIGURES = (("cmc.png", "Cumulative match characteristic (CMC)"),
                          ("fnir_fpir.png", "FNIR as a function of FPIR"))
EFFECT_FIGURES = (("effect.png", "Effect of the mask variants"),)

#: definitions behind the table columns (shown one click away)
DEFINITIONS = (
    ("genuine, impostor", "Numbers of genuine (same subject) and impostor (different subjects) comparisons."),
    ("FTA", "Failures to acquire: comparisons with an image where no template could be made (unreadable, no "
            "face found). By default they count as non-matches: a genuine one is a false non-match."),
    ("FMR(t), FNMR(t)", "FMR(t) = #{impostor scores >= t} / N_impostor, FNMR(t) = #{genuine scores < t} / "
                        "N_genuine: exact ratios of counts (ISO/IEC 19795-1); a pair is accepted when score >= t."),
    ("FNMR@FMR1% (FMR100)", "The lowest FNMR over the thresholds whose FMR is at most 1 %; FMR1000 likewise at "
                            "0.1 %. The threshold reached is in each scenario's full figures."),
    ("EER", "Equal error rate: where the FMR and FNMR step curves cross (FVC2000 midpoint)."),
    ("FDR", "Fisher discriminant ratio (mu_G - mu_I)^2 / (sigma_G^2 + sigma_I^2) of the two score sets."),
    ("TPR@FAR, ACC@FAR", "1 - FNMR, and the accuracy over all pairs, at the strict threshold of FMR <= FAR."),
    ("best ACC", "The highest accuracy over every threshold; 10-fold ACC: the mean accuracy on held-out folds "
                 "with the threshold chosen on the other folds."),
    ("*", "The FMR target is below the resolution 1/N_impostor: the strict operating point is the threshold "
          "with no false match at all."),
    ("thresholds", "Each scenario's full figures list the threshold of every operating point (*_threshold) and "
                   "the FMR it achieves (*_fmr)."),
    ("CI", "Where computed: percentile bootstrap interval (resampling subjects when known), shown under the rate."),
)

#: the tooltip of each column title
COLUMN_HINTS = {
    "fmr100": "lowest FNMR with FMR <= 1 %", "fmr1000": "lowest FNMR with FMR <= 0.1 %",
    "eer": "equal error rate", "fdr": "Fisher discriminant ratio", "tpr_at_far": "1 - FNMR at FMR <= FAR",
    "acc_at_far": "accuracy at the threshold of FMR <= FAR", "max_accuracy": "best accuracy over all thresholds",
    "kfold_accuracy": "mean held-out accuracy over the folds",
}


# ------------------------------------------------------------------------------------------------ reading

def _load_json(folder: Path, name: str, notices: list[str], *, expected: bool = True):
    """The parsed JSON file ``folder/name``, or None with a notice saying why."""
    path = folder / name
    if not path.is_file():
        if expected:
            notices.append(f"{name} is missing from {folder}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        notices.append(f"{name} cannot be read: {exc}")
    except json.JSONDecodeError as exc:
        notices.append(f"{name} is not valid JSON (line {exc.lineno}: {exc.msg})")
    return None


def verification_scenarios(metrics) -> list[str]:
    """The keys of ``metrics.json`` that hold a verification report (a dict with ``n_genuine``)."""
    if not isinstance(metrics, dict):
        return []
    return [k for k, v in metrics.items() if k != "run" and isinstance(v, dict) and "n_genuine" in v]


def _figures(folder: Path, names, notices: list[str], why: str) -> str:
    html = ""
    for name, caption in names:
        path = folder / name
        if path.is_file():
            html += figure(path, f"{caption} ({name})", caption, wide=name in WIDE_FIGURES)
        else:
            notices.append(f"{name} is missing ({why})")
            html += tag("p", f"{esc(name)}: not in this run folder.", class_="muted")
    return tag("div", html, class_="figures")


# ------------------------------------------------------------------------------------------------ sections

def metrics_table(rows, *, first: str = "scenario") -> str:
    """The metrics table: ``rows`` is ``[(label, src, path, report dict)]`` (``path``: the keys leading to the
    report in ``src``); rates in percent as in ``report.md``, starred below resolution, CIs under the rate."""
    from frmask.report import STAR_NOTE, _cell, below_resolution, present_columns

    columns = present_columns([(label, d) for label, _, _, d in rows])
    head = tag("th", esc(first)) + "".join(tag("th", esc(t), class_="num") for t in ("genuine", "impostor", "FTA"))
    for title, key, _ in columns:
        head += tag("th", tag("abbr", esc(title), title=COLUMN_HINTS.get(key)), class_="num")
    body = ""
    starred = estimated = False
    for label, src, path, d in rows:
        cells = tag("th", esc(label))
        for key in ("n_genuine", "n_impostor", "n_fta"):
            cells += value(d.get(key), src, (*path, key), name="td", class_="num")
        for _, key, kind in columns:
            v = d.get(key)
            text = _cell(v, kind)
            if below_resolution(d, key) and text != "–":
                text += "*"
                starred = True
            approximate = bool(d.get(f"{key}_approximate"))
            if approximate and text != "–":
                text = "≈" + text
                estimated = True
            inner = value(v, src, (*path, key), esc(text), class_="v")
            if approximate and d.get(f"{key}_bound") is not None:
                bound = d[f"{key}_bound"]
                inner += tag("span", "± " + value(bound, src, (*path, f"{key}_bound"), esc(_cell(bound, kind)),
                                                  class_="v"), class_="ci")
            if f"{key}_ci_low" in d:
                lo, hi = d.get(f"{key}_ci_low"), d.get(f"{key}_ci_high")
                inner += tag("span", "[" + value(lo, src, (*path, f"{key}_ci_low"), esc(_cell(lo, kind)), class_="v") + ", "
                             + value(hi, src, (*path, f"{key}_ci_high"), esc(_cell(hi, kind)), class_="v") + "]", class_="ci")
            cells += tag("td", inner, class_="num")
        body += tag("tr", cells)
    note = "Rates in %; FDR = (mu_G - mu_I)^2 / (sigma_G^2 + sigma_I^2)."
    if starred:
        note += " " + STAR_NOTE
    if estimated:
        note += (" ≈ estimated from the score histogram of an exhaustive run (too many pairs to keep): the exact "
                 "value lies within the ± bound; every other figure is exact.")
    table = tag("table", tag("thead", tag("tr", head)) + tag("tbody", body), class_="metrics")
    return tag("div", table, class_="scroll") + tag("p", esc(note), class_="muted")


def _definitions() -> str:
    items = "".join(tag("dt", esc(name)) + tag("dd", esc(text)) for name, text in DEFINITIONS)
    return tag("details", tag("summary", "Definitions of the columns") + tag("dl", items, class_="defs"))


def _provenance(run, folder: Path) -> str:
    if not isinstance(run, dict):
        return tag("p", "No provenance recorded (metrics.json has no 'run').", class_="muted")
    model, proto = run.get("model") or {}, run.get("protocol") or {}
    profile = model.get("profile") or {}
    mask_keys = ("mask", "mask_type", "template", "colors", "seed")
    mask = {k: proto[k] for k in mask_keys if k in proto}
    rows = [("model", ("model", "name"), model.get("name")), ("model SHA-256", ("model", "sha256"), model.get("sha256")),
            ("protocol", ("protocol", "name"), proto.get("name")), ("data", ("protocol", "data"), proto.get("data")),
            ("frmask version", ("frmask",), run.get("frmask")), ("date", ("date",), run.get("date")),
            ("detector", ("detector",), run.get("detector"))]
    html = ""
    for label, path, v in rows:
        shown = value(v, "metrics.json", ("run", *path), class_="mono" if "SHA" in label else None) \
            if v is not None else tag("span", "not recorded", class_="muted")
        html += tag("tr", tag("th", esc(label)) + tag("td", shown))
    if profile:
        text = ", ".join(f"{k} {'x'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in profile.items()
                         if v not in ("", None))
        html += tag("tr", tag("th", "model profile") + tag("td", esc(text) + ("; flip test" if model.get("flip") else "")))
    if mask:
        text = ", ".join(f"{k} {v}" for k, v in mask.items() if v is not None)
        html += tag("tr", tag("th", "synthetic masks") + tag("td", esc(text)))
    elif proto:
        html += tag("tr", tag("th", "synthetic masks") + tag("td", "none (the protocol's own images)"))
    full = tag("details", tag("summary", "Everything recorded about the run") + json_table(run, "metrics.json", ("run",)))
    return tag("table", tag("tbody", html), class_="kv") + full


def _verification(metrics, folder: Path, notices: list[str]) -> str:
    names = verification_scenarios(metrics)
    rows = [(n, "metrics.json", (n,), metrics[n]) for n in names]
    html = metrics_table(rows) + _definitions()
    for n in names:
        html += tag("details", tag("summary", f"Every figure of {esc(n)}") + json_table(metrics[n], "metrics.json", (n,)))
    return html


def _gallery_pair(entry: dict, kind: str, i: int, threshold, folder: Path, notices: list[str]) -> str:
    faces = ""
    for side in ("a", "b"):
        rel = entry.get(f"thumb_{side}")
        if rel and (folder / rel).is_file():
            faces += f'<img src="{_uri(folder / rel)}" alt="{esc(entry.get(f"image_{side}"))}">'
        else:
            why = entry.get(f"missing_{side}") or (f"{rel} is missing" if rel else "no thumbnail")
            if rel:
                notices.append(f"{rel} is missing (a gallery image)")
            faces += tag("div", esc(why), class_="missing")
    score = entry.get("score")
    error = threshold is not None and score is not None and (
        score < threshold if kind == "genuine" else score >= threshold)
    verdict = ""
    if error:
        verdict = tag("div", ("false non-match" if kind == "genuine" else "false match") + " at FMR100",
                      class_="verdict")
    subjects = " vs ".join(str(s) for s in (entry.get("subject_a"), entry.get("subject_b")) if s is not None)
    scen = ", ".join(entry.get("scenarios") or []) or "–"
    body = (tag("div", faces, class_="faces")
            + tag("div", f"#{entry.get('rank', i + 1)} score " + value(score, GALLERY_INDEX, (kind, i, "score"),
                                                                        esc(_score_text(score))), class_="score")
            + verdict + tag("div", esc(subjects), class_="meta") + tag("div", "scenario: " + esc(scen), class_="meta")
            + tag("div", esc(entry.get("image_a")) + "<br>" + esc(entry.get("image_b")), class_="meta mono"))
    return tag("div", body, class_="card error" if error else "card", data_kind=kind)


def _score_text(score) -> str:
    return "–" if score is None else f"{score:.4f}"


def _uri(path: Path) -> str:
    from frmask.html_parts import data_uri

    return data_uri(path)


def _gallery(gallery, folder: Path, notices: list[str]) -> str:
    if not isinstance(gallery, dict):
        return tag("p", "No gallery of the errors: gallery.json is missing or unreadable (a run written by an "
                        "older frmask, or with the gallery turned off).", class_="muted")
    thr = (gallery.get("threshold") or {})
    t = thr.get("value")
    html = tag("p", f"The {esc(gallery.get('k'))} lowest-scoring genuine and highest-scoring impostor comparisons, "
                    "both images as the model saw them (aligned, masked). Framed in red: an error at the FMR100 "
                    f"threshold of {esc(thr.get('scenario', 'all'))}, "
                    + value(t, GALLERY_INDEX, ("threshold", "value"), esc(_score_text(t))) + ".", class_="lead")
    for kind, title in (("genuine", "Lowest-scoring genuine pairs"), ("impostor", "Highest-scoring impostor pairs")):
        entries = gallery.get(kind) or []
        cards = "".join(_gallery_pair(e, kind, i, t, folder, notices) for i, e in enumerate(entries))
        html += tag("h3", esc(title)) + (tag("div", cards, class_="gallery") if cards else
                                         tag("p", "none (no scored pair of this kind)", class_="muted"))
    return html


def _failures(gallery, folder: Path, notices: list[str], run) -> str:
    n = (run or {}).get("n_failures") if isinstance(run, dict) else None
    items = (gallery or {}).get("failures") if isinstance(gallery, dict) else None
    if items is None and (folder / "failures.csv").is_file():
        import pandas as pd

        try:
            frame = pd.read_csv(folder / "failures.csv", dtype=str, keep_default_na=False)
            items = [{"image": r.get("image"), "reason": r.get("reason"), "thumb": None} for r in frame.to_dict("records")]
        except (ValueError, OSError) as exc:
            notices.append(f"failures.csv cannot be read: {exc}")
    if not items:
        return tag("p", "None: every image gave a template." if not n else
                   f"{esc(n)} failure(s) to acquire; the list is missing (failures.csv).", class_="muted")
    rows = ""
    for e in items:
        rel = e.get("thumb")
        thumb = f'<img src="{_uri(folder / rel)}" alt="{esc(e.get("image"))}">' if rel and (folder / rel).is_file() \
            else tag("span", "no thumbnail" + (f" ({esc(rel)} is missing)" if rel else ""), class_="muted")
        rows += tag("tr", tag("td", thumb, class_="fta") + tag("td", esc(e.get("image")), class_="mono")
                    + tag("td", esc(e.get("reason"))))
    total = (gallery or {}).get("n_failures", len(items)) if isinstance(gallery, dict) else len(items)
    more = f" Showing {len(items)} of {total:,}; all are in failures.csv." if total > len(items) else ""
    return (tag("p", f"{total:,} image(s) gave no template; their comparisons count as the run's FTA policy says."
                + more, class_="lead")
            + tag("table", tag("thead", tag("tr", tag("th", "image") + tag("th", "file") + tag("th", "reason")))
                  + tag("tbody", rows)))


def _effect(effect, folder: Path, notices: list[str]) -> str:
    html = ""
    base = effect.get("baseline") if isinstance(effect, dict) else None
    if isinstance(base, dict) and "n_genuine" in base:
        html += tag("h3", "Baseline (no synthetic mask)") + metrics_table([("baseline", "effect.json", ("baseline",), base)])
    for key, title in (("thresholds", "Thresholds fixed on the baseline"), ("variants", "Mask variants")):
        if isinstance(effect, dict) and key in effect:
            html += tag("h3", title) + json_table(effect[key], "effect.json", (key,))
    rest = {k: v for k, v in effect.items() if k not in ("baseline", "thresholds", "variants")} \
        if isinstance(effect, dict) else {}
    if rest:
        html += tag("h3", "Other figures") + json_table(rest, "effect.json")
    return html + _figures(folder, EFFECT_FIGURES, notices, "an effect run draws it")


# ------------------------------------------------------------------------------------------------ pages

def run_page(folder) -> str:
    """The HTML of the run folder ``folder`` (module docstring); never raises for missing or broken files."""
    folder = Path(folder)
    notices: list[str] = []
    if not folder.is_dir():
        notices.append(f"{folder} is not a folder")
    has_effect = (folder / "effect.json").is_file()
    metrics = _load_json(folder, "metrics.json", notices, expected=not has_effect)
    effect = _load_json(folder, "effect.json", notices, expected=False)
    if metrics is not None and not isinstance(metrics, dict):
        notices.append("metrics.json does not hold an object of reports")
        metrics = None
    run = (metrics or {}).get("run") or (effect.get("run") if isinstance(effect, dict) else None)
    model = ((run or {}).get("model") or {}).get("name") if isinstance(run, dict) else None
    proto = ((run or {}).get("protocol") or {}) if isinstance(run, dict) else {}
    title = f"{model} on {proto.get('name')}" if model and proto.get("name") else f"frmask run {folder.name}"
    sections, nav = [], []

    def add(anchor, heading, html):
        nav.append((anchor, heading))
        sections.append(tag("section", tag("h2", esc(heading)) + html, id=anchor))

    add("provenance", "Provenance", _provenance(run, folder))
    scen = verification_scenarios(metrics)
    gallery = None
    if scen:
        add("metrics", "Verification metrics", _verification(metrics, folder, notices))
        add("figures", "DET and score distributions",
            _figures(folder, VERIFICATION_FIGURES, notices, "written without plots, or by an older frmask"))
        if (folder / GALLERY_INDEX).is_file():
            gallery = _load_json(folder, GALLERY_INDEX, notices)
        else:
            notices.append(f"{GALLERY_INDEX} is missing (a run from an older frmask, or written without a gallery)")
        add("gallery", "Gallery of the errors", _gallery(gallery, folder, notices))
    if isinstance(metrics, dict) and "identification" in metrics:
        ident = metrics["identification"]
        closed = isinstance(ident, dict) and ident.get("n_nonmated") == 0  # no FPIR: no fnir_fpir.png
        names = IDENTIFICATION_FIGURES[:1] if closed else IDENTIFICATION_FIGURES
        add("identification", "Identification",
            json_table(ident, "metrics.json", ("identification",))
            + _figures(folder, names, notices, "an identify run draws it")
            + (tag("p", "Closed set (no non-mated probe): FPIR is undefined, so there is no FNIR(FPIR) curve.",
                   class_="muted") if closed else ""))
    if isinstance(effect, dict):
        add("effect", "Effect of the masks", _effect(effect, folder, notices))
    other = {k: v for k, v in (metrics or {}).items() if k not in ("run", "identification", *scen)}
    if other:
        add("other", "Other results", json_table(other, "metrics.json"))
    if scen or (isinstance(run, dict) and run.get("n_failures")):
        add("failures", "Failures to acquire", _failures(gallery, folder, notices, run))
    subtitle = proto.get("description") or str(folder)
    return _assemble(title, subtitle, nav, sections, notices, run)


def _assemble(title, subtitle, nav, sections, notices, run) -> str:
    from frmask._version import __version__

    body = ""
    if notices:
        items = "".join(tag("li", esc(n)) for n in dict.fromkeys(notices))
        body += tag("div", tag("h2", "What is missing") + tag("ul", items), class_="notices", id="notices")
    body += "\n".join(sections)
    made = run.get("frmask") if isinstance(run, dict) else None
    footer = f"Page written by frmask {esc(__version__)}" + (f" from a run of frmask {esc(made)}." if made else ".")
    return page(title, subtitle, nav, body, footer)


def write_report_html(folder, path=None) -> Path:
    """Write the page of the run folder ``folder`` to ``path`` (default ``folder/report.html``), atomically.
    Run writers call it on their temporary folder, after every other file, before the final rename."""
    from frmask._atomic import write_text_atomic

    folder = Path(folder)
    path = Path(path) if path is not None else folder / REPORT_HTML
    write_text_atomic(path, run_page(folder))
    return path


def comparison_page(folders, *, scenarios=None) -> str:
    """The HTML comparing the run folders ``folders``: their provenance, one metrics table (a row per run and
    scenario) and every run in one DET figure; runs that cannot be read are named in a notice."""
    import tempfile

    from frmask.report import comparison_det, read_run, run_label

    notices, runs, rows = [], [], []
    for folder in map(Path, folders):
        try:
            metrics = read_run(folder)
        except ValueError as exc:
            notices.append(str(exc))
            continue
        label = run_label(folder)
        runs.append((folder, label, metrics))
        for n in verification_scenarios(metrics):
            if not scenarios or n in scenarios:
                rows.append((f"{label} / {n}", f"{label}/metrics.json", (n,), metrics[n]))
    head = "".join(tag("th", t) for t in ("run", "model", "model SHA-256", "protocol", "data", "date", "frmask"))
    body = ""
    for folder, label, metrics in runs:
        run = metrics.get("run") or {}
        model, proto = run.get("model") or {}, run.get("protocol") or {}
        sha = model.get("sha256")
        body += tag("tr", "".join(tag("td", esc(fmt(v)) if v is not None else tag("span", "–", class_="muted"),
                                      class_=c) for v, c in (
            (label, None), (model.get("name"), None), (sha[:16] + "…" if sha else None, "mono"),
            (proto.get("name"), None), (proto.get("data"), "mono"), (run.get("date"), None), (run.get("frmask"), None))))
    sections = [tag("section", tag("h2", "Runs") + tag("div", tag("table", tag("thead", tag("tr", head))
                                                                   + tag("tbody", body)), class_="scroll"), id="runs")]
    nav = [("runs", "Runs")]
    if rows:
        nav.append(("metrics", "Verification metrics"))
        sections.append(tag("section", tag("h2", "Verification metrics")
                            + metrics_table(rows, first="run / scenario") + _definitions(), id="metrics"))
        with tempfile.TemporaryDirectory(prefix="frmask-det-") as tmp:
            det = Path(tmp) / "det.png"
            try:
                comparison_det([f for f, _, _ in runs], det, scenarios=scenarios)
                fig = figure(det, "Every run and scenario in one DET figure, FMR100 and FMR1000 marked", "DET")
            except (ValueError, OSError) as exc:
                notices.append(f"no comparison DET figure: {exc}")
                fig = tag("p", "No DET figure (see above).", class_="muted")
        nav.append(("det", "DET"))
        sections.append(tag("section", tag("h2", "DET") + fig, id="det"))
    elif runs:
        notices.append(f"no scenario {', '.join(scenarios or [])} with a verification report in these runs")
    title = f"Comparison of {len(runs)} run(s)"
    return _assemble(title, ", ".join(label for _, label, _ in runs), nav, sections, notices, None)


def write_comparison_html(folders, path, *, scenarios=None) -> Path:
    """Write :func:`comparison_page` to ``path`` atomically."""
    from frmask._atomic import write_text_atomic

    write_text_atomic(path, comparison_page(folders, scenarios=scenarios))
    return Path(path)
