"""The run folder of ``frmask effect`` (:mod:`frmask.effect`).

- ``effect.json``: ``run`` (provenance: model SHA-256, protocol, grid, targets, FTA policy, CI settings),
  ``baseline`` (the unmasked comparisons' verification report, plus ``targets``: its FNMR and FMR at each
  fixed threshold), ``thresholds`` (FMR target -> threshold, fixed on the baseline impostors) and ``variants``
  (one per grid point: ``label``, ``mask_type``, ``shape``, ``coverage``, ``color``, ``rgb``, counts, ``eer``
  and per target ``targets[target]["fixed"]`` (``fnmr``, ``fmr``, counts, ``fnmr_ratio``, ``*_ci``) and
  ``["recalibrated"]`` (its own strict FNMR@FMR point)). Byte-identical for the same command and inputs.
- ``effect.csv``: one row per variant and target; ``effect.md``: the same as tables;
- ``effect.png``: FNMR, FMR and the FNMR ratio at each fixed threshold per variant, bars grouped by mask type and
  coverage and painted in the mask's colour, with the baseline as a dashed line and the intervals as error bars;
- ``metrics.json``: the baseline report as a score run holds it (``{"run", "all"}``), so ``frmask report``
  reads an effect folder like any run.

The folder is built beside its destination and renamed into place (:func:`frmask.report.building_dir`).
"""

from __future__ import annotations

from pathlib import Path

from frmask._format import percent

FILES = ("effect.json", "effect.csv", "effect.md", "effect.png", "metrics.json", "report.html")


def _pct(value) -> str:
    return percent(value, unit="")


def _interval(ci) -> str:
    return "" if not ci else f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"


def effect_rows(result) -> list[dict]:
    """The flat rows of ``effect.csv``: one per variant and FMR target (the baseline first, as variant
    ``baseline``)."""
    rows = []
    entries = [{"label": "baseline", "mask_type": "", "shape": "", "coverage": "", "color": "",
                "n_genuine": result.baseline["n_genuine"], "n_impostor": result.baseline["n_impostor"],
                "n_fta": result.baseline["n_fta"], "eer": result.baseline["eer"],
                "eer_ci": result.baseline.get("eer_ci"), "targets": result.baseline["targets"],
                **{k: result.baseline[k] for k in ("genuine_mean", "genuine_min", "impostor_mean")}}] + result.variants
    for v in entries:
        for key, t in v["targets"].items():
            fixed, own = t["fixed"], t.get("recalibrated", {})
            row = {"variant": v["label"], "mask_type": v["mask_type"], "shape": v["shape"], "coverage": v["coverage"],
                   "color": v["color"], "target_fmr": float(key), "threshold": fixed["threshold"],
                   "fnmr": fixed["fnmr"], "fmr": fixed["fmr"], "fnmr_ratio": fixed["fnmr_ratio"],
                   "false_non_matches": fixed["false_non_matches"], "false_matches": fixed["false_matches"],
                   "recalibrated_threshold": own.get("threshold"), "recalibrated_fnmr": own.get("fnmr"),
                   "recalibrated_fmr": own.get("fmr"), "eer": v["eer"], "genuine_mean": v["genuine_mean"],
                   "genuine_min": v["genuine_min"], "impostor_mean": v["impostor_mean"], "n_genuine": v["n_genuine"],
                   "n_impostor": v["n_impostor"], "n_fta": v["n_fta"]}
            for name, ci in (("fnmr", fixed.get("fnmr_ci")), ("fmr", fixed.get("fmr_ci")),
                             ("fnmr_ratio", fixed.get("fnmr_ratio_ci")),
                             ("recalibrated_fnmr", own.get("fnmr_ci")), ("eer", v.get("eer_ci"))):
                if ci:
                    row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci
            rows.append(row)
    return rows


def effect_markdown(result, title: str) -> str:
    """``effect.md``: the thresholds and, per FMR target, one table row per variant (rates in %)."""
    run = result.run
    lines = [f"# {title}", "", run["protocol"]["description"], "",
             f"Baseline (no mask): {result.baseline['n_genuine']:,} genuine, {result.baseline['n_impostor']:,} "
             f"impostor comparisons, {result.baseline['n_fta']} failure(s) to acquire, EER "
             f"{_pct(result.baseline['eer'])} %, mean genuine score {result.baseline['genuine_mean']:.4f}. Masked: the "
             + ("probes and references." if run["masked"] == "both" else "probes (references unmasked)."),
             ""]
    for key, threshold in result.thresholds.items():
        base = result.baseline["targets"][key]["fixed"]
        lines += [f"## Threshold fixed at baseline FMR <= {100 * float(key):g} %: {threshold:.6f}", "",
                  f"Baseline at this threshold: FNMR {_pct(base['fnmr'])}{_interval(base.get('fnmr_ci'))} %, "
                  f"FMR {_pct(base['fmr'])}{_interval(base.get('fmr_ci'))} %.", "",
                  "| variant | shape | coverage | colour | FNMR fixed | FMR fixed | FNMR ratio | FNMR recalibrated "
                  "| EER | mean genuine score |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for v in result.variants:
            t = v["targets"][key]
            fixed, own = t["fixed"], t["recalibrated"]
            ratio = "–" if fixed["fnmr_ratio"] is None else f"{fixed['fnmr_ratio']:.2f}"
            if fixed.get("fnmr_ratio_ci"):
                ratio += f" [{fixed['fnmr_ratio_ci'][0]:.2f}, {fixed['fnmr_ratio_ci'][1]:.2f}]"
            lines.append(f"| {v['label']} | {v['shape']} | {v['coverage']} | {v['color']} | "
                         f"{_pct(fixed['fnmr'])}{_interval(fixed.get('fnmr_ci'))} | "
                         f"{_pct(fixed['fmr'])}{_interval(fixed.get('fmr_ci'))} | {ratio} | "
                         f"{_pct(own['fnmr'])}{_interval(own.get('fnmr_ci'))} | "
                         f"{_pct(v['eer'])}{_interval(v.get('eer_ci'))} | {v['genuine_mean']:.4f} |")
        lines.append("")
    lines.append("Rates in %; FNMR ratio = the variant's FNMR / the baseline's FNMR at the same threshold (– where "
                 "the baseline has no false non-match); intervals are percentile bootstrap intervals"
                 + (f" over {result.run['ci']['method']} ({result.run['ci']['n_boot']} resamples, level "
                    f"{result.run['ci']['level']:g})" if result.run.get("ci") else " (none asked for: --ci)") + ".")
    return "\n".join(lines) + "\n"


def plot_effect(result, path, title: str) -> None:
    """``effect.png``: one row of panels per FMR target: FNMR, FMR (in %) and the FNMR ratio to the baseline at the
    fixed threshold; bars grouped by (mask type, coverage), one bar per colour painted in that colour, intervals as
    error bars, the baseline (or a ratio of 1) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from frmask.metrics.plots import save_figure

    variants = result.variants
    groups = list(dict.fromkeys((v["mask_type"], v["coverage"]) for v in variants))
    colors = list(dict.fromkeys(v["color"] for v in variants))
    width = 0.8 / len(colors)
    keys = list(result.thresholds)
    panels = (("fnmr", 100.0, "FNMR (%)"), ("fmr", 100.0, "FMR (%)"), ("fnmr_ratio", 1.0, "FNMR / no-mask FNMR"))
    fig, axes = plt.subplots(len(keys), 3, figsize=(max(13.0, 1.2 * len(groups) * len(colors) + 4), 3.8 * len(keys)),
                             squeeze=False)
    for row, key in zip(axes, keys):
        base = result.baseline["targets"][key]["fixed"]
        for ax, (rate, unit, label) in zip(row, panels):
            for v in variants:
                fixed = v["targets"][key]["fixed"]
                if fixed[rate] is None:  # a ratio to a baseline without false non-matches
                    continue
                g = groups.index((v["mask_type"], v["coverage"]))
                x = g + (colors.index(v["color"]) - (len(colors) - 1) / 2) * width
                value = unit * fixed[rate]
                ci = fixed.get(f"{rate}_ci")
                err = None if not ci else np.array([[value - unit * ci[0]], [unit * ci[1] - value]]).clip(0)
                ax.bar(x, value, width * 0.92, color=np.array(v["rgb"]) / 255.0, edgecolor="black", linewidth=0.6,
                       yerr=err, ecolor="0.5", capsize=2, label=v["color"] if g == 0 else None)
            level = 1.0 if rate == "fnmr_ratio" else unit * base[rate]
            ax.axhline(level, color="black", linestyle="--", linewidth=1,
                       label="no mask" + ("" if rate == "fnmr_ratio" else f" {level:.2f} %"))
            ax.set_xticks(range(len(groups)), [f"{m}\n{c}" for m, c in groups])
            ax.set_ylabel(label)
            ax.set_title(f"{label.split(' (')[0]}, threshold {result.thresholds[key]:.4f} (no-mask FMR <= "
                         f"{100 * float(key):g} %)", fontsize=9)
            ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1e-3))
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=7, title="colour", title_fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_effect_run(result, out, *, title: str | None = None) -> Path:
    """Write the run folder ``out`` of an :class:`~frmask.effect.EffectResult` (module docstring)."""
    import pandas as pd

    from frmask.report import building_dir, write_json
    from frmask.report_html import write_report_html

    out = Path(out)
    data = result.run["protocol"].get("data")
    where = f" ({Path(data).name})" if data else ""
    title = title or f"Mask effect: {result.run['model']['name'] or 'model'} on {result.run['protocol']['name']}{where}"
    with building_dir(out) as tmp:
        write_json(tmp / "effect.json", result.to_dict())
        pd.DataFrame(effect_rows(result)).to_csv(tmp / "effect.csv", index=False, float_format="%.9g")
        (tmp / "effect.md").write_text(effect_markdown(result, title))
        plot_effect(result, tmp / "effect.png", title)
        baseline = {k: v for k, v in result.baseline.items()
                    if k not in ("targets", "eer_ci", "genuine_mean", "genuine_min", "impostor_mean")}
        metrics = {"run": {**result.run, "kind": "effect"}, "all": baseline}
        write_json(tmp / "metrics.json", metrics)
        write_report_html(tmp)
    return out
