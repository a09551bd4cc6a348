"""The run folder of ``frmask identify`` (:mod:`frmask.identify`).

- ``metrics.json``: ``run`` (provenance: model SHA-256, the split's settings, detector, embedding counts) and
  ``identification``: ``n_gallery`` (templates enrolled), ``n_gallery_fta``, ``n_gallery_identities``,
  ``n_probes``, ``n_searches``, ``n_mated``, ``n_nonmated``, ``n_fta_mated``, ``n_fta_nonmated``,
  ``n_mated_not_enrolled``, ``rank1``, ``cmc`` (ranks 1..20), ``fnir_at_fpir`` (FPIR target -> ``threshold``,
  ``fpir``, ``fnir``, counts, ``fnir_ci``), ``fnir_at_fpir_unresolved``, ``left_out_identities``,
  ``short_identities``, and with ``--ci`` ``rank1_ci``, ``cmc_ci`` and ``ci``;
- ``searches.csv``: one row per probe (``probe, identity, mated, mate_score, rank, top_score``; empty for
  what does not apply, ``inf`` rank for a miss); ``failures.csv`` (``image, reason``) when any;
- ``report.md``: the figures as a table; ``cmc.png``; ``fnir_fpir.png`` (open-set runs only: without non-mated
  probes FPIR is undefined); ``report.html`` (:mod:`frmask.report_html`).

Built beside its destination and renamed into place (:func:`frmask.report.building_dir`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from frmask._format import percent


def _pct(x) -> str:
    return percent(x)


def identify_markdown(result, title: str) -> str:
    """``report.md``: counts, rank-1, CMC at ranks 1, 5, 10, 20 and FNIR at each resolved FPIR target."""
    m = result.metrics
    ci = m.get("rank1_ci")
    lines = [f"# {title}", "", result.split.description, "",
             f"Gallery: {m['n_gallery']:,} templates of {m['n_gallery_identities']:,} identities "
             f"({m['n_gallery_fta']} gallery image(s) gave no template). Searches: {m['n_mated']:,} mated, "
             f"{m['n_nonmated']:,} non-mated ({m['n_fta_mated'] + m['n_fta_nonmated']} failure(s) to acquire).", "",
             "| figure | value |", "|---|---:|",
             f"| rank-1 | {_pct(m['rank1'])}" + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "") + " |"]
    for r in (5, 10, 20):
        if r <= len(m["cmc"]):
            lines.append(f"| CMC rank {r} | {_pct(m['cmc'][r - 1])} |")
    for key, p in m["fnir_at_fpir"].items():
        lines.append(f"| FNIR @ FPIR <= {float(key):g} (threshold {p['threshold']:.4f}) | {_pct(p['fnir'])} |")
    if m["fnir_at_fpir_unresolved"]:
        lines += ["", f"FPIR target(s) {', '.join(m['fnir_at_fpir_unresolved'])} not resolved: fewer than 1/target "
                  f"non-mated searches ({m['n_nonmated']})."]
    return "\n".join(lines) + "\n"


def searches_frame(result):
    """The per-probe table of ``searches.csv`` (pandas DataFrame)."""
    import pandas as pd

    split, res = result.split, result.results
    keys = [e.key for e in split.images[split.n_gallery:]]
    return pd.DataFrame({"probe": keys, "identity": np.asarray(split.identities, dtype=object)[res.subject],
                         "mated": res.mated.astype(np.int8), "mate_score": res.mate_score, "rank": res.rank,
                         "top_score": res.top_score})


def write_identify_run(result, out, *, title: str | None = None) -> Path:
    """Write the run folder ``out`` of an :class:`~frmask.identify.IdentifyResult` (module docstring)."""
    from frmask.metrics.identification import fnir_at_fpir, fnir_fpir_curve
    from frmask.metrics.identification_plots import plot_cmc, plot_fnir_fpir
    from frmask.report import building_dir, write_failures, write_json
    from frmask.report_gallery import SCORE_FORMAT
    from frmask.report_html import write_report_html

    out = Path(out)
    title = title or f"{result.run.get('model', {}).get('name', 'model')}: 1:N identification"
    m = result.metrics
    with building_dir(out) as tmp:
        doc = {"run": result.run, "identification": m}
        write_json(tmp / "metrics.json", doc)
        searches_frame(result).to_csv(tmp / "searches.csv", index=False, float_format=SCORE_FORMAT)
        if result.failures:
            write_failures(tmp / "failures.csv", result.split.images, result.failures)
        (tmp / "report.md").write_text(identify_markdown(result, title))
        label = result.run.get("model", {}).get("name") or "model"
        plot_cmc([(label, m["cmc"])], tmp / "cmc.png", title=f"CMC: {title}")
        if m["n_nonmated"]:
            rank, mate_score = result.results.mated_arrays()
            top = result.results.nonmated_top()
            targets = [float(k) for k in m["fnir_at_fpir"]]
            plot_fnir_fpir([(label, fnir_fpir_curve(rank, mate_score, top),
                             fnir_at_fpir(rank, mate_score, top, targets), m["n_nonmated"])],
                           tmp / "fnir_fpir.png", title=f"FNIR(FPIR): {title}")
        write_report_html(tmp)
    return out
