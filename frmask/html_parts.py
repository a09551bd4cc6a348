"""Building blocks of frmask's HTML pages: escaping, inline images, value cells tied to their JSON, generic
tables of nested JSON, and the page shell (stylesheet and a tiny inline script; nothing from outside).

Every number taken from a run's JSON file is written in an element carrying ``data-src`` (the file, e.g.
``metrics.json``), ``data-path`` (the JSON list of keys and indices that leads to it) and ``data-value``
(the value itself, as JSON), so a reader or a test can check the page against the files it shows.

Number display: rates (keys naming a rate, :func:`is_rate_key`, with a value in [0, 1]) in percent with two
decimals, as in ``report.md``; other floats with 6 significant digits; integers with thousands separators.
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path

#: words that mark a key as a rate (a fraction shown in percent); thresholds and counts never are
RATE_WORDS = ("fmr", "fnmr", "fnir", "fpir", "eer", "tpr", "far", "frr", "acc", "accuracy", "rank", "cmc", "rate")

# Counts how many images decoded once the page has loaded (the tests read it back from the DOM), and opens
# every <details> before printing so that a printout shows the definitions and full tables.
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var out = document.getElementById('frmask-image-check');
  out.setAttribute('data-images', String(imgs.length));
  out.setAttribute('data-loaded', String(ok));
  out.textContent = ok + ' of ' + imgs.length + ' images loaded';
});
window.addEventListener('beforeprint', function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
});
"""


def esc(value) -> str:
    """HTML-escaped text of ``value`` (None as an empty string)."""
    return "" if value is None else escape(str(value), quote=True)


def tag(name: str, content: str = "", **attrs) -> str:
    """``<name attrs>content</name>``; ``content`` is HTML already. Attribute names: ``class_`` is
    ``class``, underscores become dashes; a None attribute is left out."""
    parts = [name]
    for key, value in attrs.items():
        if value is None:
            continue
        key = key.rstrip("_").replace("_", "-")
        parts.append(f'{key}="{esc(value)}"')
    return f"<{' '.join(parts)}>{content}</{name}>"


def data_uri(path) -> str:
    """The file ``path`` (PNG, JPEG or SVG) as a ``data:`` URI."""
    path = Path(path)
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}.get(
        path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def is_rate_key(key) -> bool:
    """Whether a key names a rate (:data:`RATE_WORDS`), not a threshold, count or score."""
    k = str(key).lower()
    if any(w in k for w in ("threshold", "n_", "count", "score", "seed", "target")) or k.startswith("n"):
        return False
    return any(w in k for w in RATE_WORDS)


def fmt(value, key=None) -> str:
    """Display text of a JSON value (module docstring)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if key is not None and is_rate_key(key) and 0 <= value <= 1:
            return f"{100 * value:.2f} %"
        return f"{value:.6g}"
    return str(value)


def value(val, src: str, path, text: str | None = None, *, name: str = "span", **attrs) -> str:
    """An element showing ``val`` (``text``, or :func:`fmt` by the last key of ``path`` that is not a list
    index) tied to its place in ``src`` (module docstring)."""
    key = next((k for k in reversed(path) if not isinstance(k, int)), None)
    shown = esc(fmt(val, key)) if text is None else text
    return tag(name, shown, data_src=src, data_path=json.dumps(list(path)), data_value=json.dumps(val), **attrs)


def _scalar(v) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _flatten(obj, prefix=()) -> dict:
    """``{key path tuple: scalar}`` of nested dicts (lists of scalars count as one value)."""
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(_flatten(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


def _cell(v, src, path) -> str:
    if _scalar(v):
        numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
        return value(v, src, path, name="td", class_="num" if numeric else None)
    return tag("td", esc(json.dumps(v)), class_="mono")


def json_table(obj, src: str, path=()) -> str:
    """A readable HTML rendering of any JSON value ``obj`` found at ``path`` in ``src``.

    A dict of scalars is a two-column table; a list of scalars one row indexed from 1 (ranks); a list of
    dicts, or a dict of dicts, one row per item with the union of their (flattened) keys as columns; a
    mixed dict its scalars first, then each nested value under its own heading.
    """
    path = tuple(path)
    if _scalar(obj):
        return tag("p", value(obj, src, path))
    if isinstance(obj, list):
        if all(_scalar(v) for v in obj):
            head = "".join(tag("th", str(i), class_="num") for i in range(1, len(obj) + 1))
            row = "".join(_cell(v, src, (*path, i)) for i, v in enumerate(obj))
            return tag("div", tag("table", tag("thead", tag("tr", head)) + tag("tbody", tag("tr", row))),
                       class_="scroll")
        if all(isinstance(v, dict) for v in obj):
            return _rows_table([(str(i + 1), i, v) for i, v in enumerate(obj)], src, path, "#")
        return tag("pre", esc(json.dumps(obj, indent=1)), class_="mono")
    scalars = {k: v for k, v in obj.items() if _scalar(v)}
    nested = {k: v for k, v in obj.items() if not _scalar(v)}
    if nested and not scalars and all(isinstance(v, dict) for v in nested.values()) and \
            all(all(_scalar(x) or isinstance(x, dict) for x in v.values()) for v in nested.values()):
        return _rows_table([(str(k), k, v) for k, v in nested.items()], src, path, "")
    html = ""
    if scalars:
        rows = "".join(tag("tr", tag("th", esc(k)) + _cell(v, src, (*path, k))) for k, v in scalars.items())
        html += tag("table", tag("tbody", rows), class_="kv")
    for k, v in nested.items():
        html += tag("h4", esc(k)) + json_table(v, src, (*path, k))
    return html


def _rows_table(items, src, path, first: str) -> str:
    flats = [(label, key, _flatten(v)) for label, key, v in items]
    columns = list(dict.fromkeys(c for _, _, f in flats for c in f))
    head = tag("th", esc(first)) + "".join(tag("th", esc(" / ".join(map(str, c)))) for c in columns)
    body = ""
    for label, key, flat in flats:
        cells = "".join(_cell(flat[c], src, (*path, key, *c)) if c in flat else tag("td", "")
                        for c in columns)
        body += tag("tr", tag("th", esc(label)) + cells)
    return tag("div", tag("table", tag("thead", tag("tr", head)) + tag("tbody", body)), class_="scroll")


def figure(path, caption: str, alt: str, *, wide: bool = False) -> str:
    """An inline figure of the image file ``path`` (``wide``: across the whole page)."""
    return tag("figure", f'<img src="{data_uri(path)}" alt="{esc(alt)}">' + tag("figcaption", esc(caption)),
               class_="wide" if wide else None)


def page(title: str, subtitle: str, nav: list[tuple[str, str]], body: str, footer: str) -> str:
    """The whole HTML document: header, section links, ``body``, footer, the stylesheet and the script."""
    from frmask._resources import data_file

    css = data_file("report.css").read_text(encoding="utf-8")
    links = "".join(tag("a", esc(label), href=f"#{anchor}") for anchor, label in nav)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>\n{css}</style>\n</head>\n<body>\n"
            + tag("header", tag("div", tag("h1", esc(title)) + tag("p", esc(subtitle)), class_="inner"),
                  class_="page") + "\n"
            + tag("nav", tag("div", links, class_="inner"), class_="toc") + "\n"
            + "<main>\n" + body + "\n" + tag("footer", footer + " " + tag("span", "", id="frmask-image-check"))
            + "\n</main>\n<script>" + SCRIPT + "</script>\n</body>\n</html>\n")
