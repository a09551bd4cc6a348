"""``frmask effect``: the mask-effect analysis of :mod:`frmask.effect` (registered in :mod:`frmask.cli`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from frmask.cli_eval import _embedder, _open_cache
from frmask.protocols import PROTOCOLS as EFFECT_PROTOCOLS


def _bar(desc: str, total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc=desc, disable=None, leave=False, file=sys.stderr)


def format_effect(result, out) -> str:
    """The summary printed after a run: thresholds, then one line per variant and target."""
    b = result.baseline
    lines = [f"{result.run['model']['name']} on {result.run['protocol']['description']}",
             f"baseline (no mask): {b['n_genuine']:,} genuine, {b['n_impostor']:,} impostor, {b['n_fta']} FTA; "
             f"EER {100 * b['eer']:.2f} %; {sum(result.embedding.values()):,} embeddings "
             f"({result.embedding['cached']:,} from the cache, {result.embedding['computed']:,} computed)"]
    for key, t in result.thresholds.items():
        fixed = b["targets"][key]["fixed"]
        lines.append(f"threshold at baseline FMR <= {float(key):g}: {t:.6f} "
                     f"(baseline FNMR {100 * fixed['fnmr']:.2f} %, FMR {100 * fixed['fmr']:.3f} %)")
    lines.append("")
    width = max(len(v["label"]) for v in result.variants)
    for key in result.thresholds:
        lines.append(f"at the FMR {float(key):g} threshold:  {'variant':<{width}}  FNMR fixed   FMR fixed  ratio  "
                     f"FNMR recal.")
        for v in result.variants:
            f, r = v["targets"][key]["fixed"], v["targets"][key]["recalibrated"]
            ratio = "  –" if f["fnmr_ratio"] is None else f"{f['fnmr_ratio']:5.2f}"
            lines.append(f"{'':22}{v['label']:<{width}}  {100 * f['fnmr']:8.2f} %  {100 * f['fmr']:7.3f} %  {ratio}  "
                         f"{100 * r['fnmr']:8.2f} %")
    if out:
        lines.append(f"wrote {out}/: effect.json, effect.csv, effect.md, effect.png, metrics.json")
    return "\n".join(lines)


@click.command("effect")
@click.argument("model")
@click.option("--protocol", required=True, type=click.Choice(EFFECT_PROTOCOLS),
              help="The unmasked comparisons: mfr2 (its no-mask faces, every pair), folder (identity folders, every "
                   "pair), a .bin benchmark, or csv.")
@click.option("--data", required=True, type=click.Path(),
              help="The MFR2 folder, the identity folders, the .bin file, or the pairs CSV.")
@click.option("--grid", required=True,
              help='Mask variants, e.g. "mask-type=surgical,n95;coverage=low,medium,high;color=light-blue,black" '
                   "(the cartesian product; a key left out takes surgical / high / light-blue).")
@click.option("--fmr", "targets", type=float, multiple=True, metavar="RATE",
              help="FMR target whose threshold is fixed on the baseline (repeatable; default 0.01 and 0.001).")
@click.option("--both", is_flag=True, help="Also mask the references (default: probes masked, references not).")
@click.option("--ci", "ci_level", type=float, default=None, is_flag=False, flag_value=0.95, metavar="[LEVEL]",
              help="Subject-bootstrap confidence intervals (default level 0.95).")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap resamples for --ci.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed for --ci.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--root", type=click.Path(file_okay=False), help="csv: folder the relative paths start from.")
@click.option("--detector", type=click.Choice(["yunet", "mtcnn"]), default="yunet", show_default=True)
@click.option("--fta", type=click.Choice(["reject", "exclude", "error"]), default="reject", show_default=True,
              help="Failures to acquire: count as non-matches, exclude, or stop.")
@click.option("--flip", is_flag=True, help="Flip test: add the embedding of the mirrored crop.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="auto", show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True, help="Image preparation threads.")
@click.option("--cache", type=click.Path(dir_okay=False), help="Embedding cache file (default: ~/.cache/frmask).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the embedding cache.")
def effect(model, protocol, data, grid, targets, both, ci_level, n_boot, seed, out, root, detector, fta, flip, device,
           batch_size, threads, cache, no_cache):
    """How much each mask variant hurts MODEL at fixed thresholds (NIST FRVT's mask-effect measure): thresholds
    fixed on the unmasked comparisons, then FNMR and FMR with the probes masked by every variant of --grid."""
    from frmask.effect import DEFAULT_TARGETS, grid_variants, load_effect_protocol, parse_grid, run_effect
    from frmask.effect_report import write_effect_run

    parsed = parse_grid(grid)
    variants = grid_variants(parsed)
    proto = load_effect_protocol(protocol, data, root=root)
    embedder = _embedder(model, device, batch_size, flip, None, None, None, None, None, None)
    store = _open_cache(cache, no_cache)
    try:
        result = run_effect(embedder, proto, variants, targets=targets or DEFAULT_TARGETS, both=both,
                            detector=detector, cache=store, threads=threads, fta=fta, ci=ci_level, n_boot=n_boot,
                            seed=seed, progress=_bar, model_name=Path(model).name, extra={"data": str(data)},
                            grid=parsed)
    finally:
        if store is not None:
            store.close()
    write_effect_run(result, out)
    click.echo(format_effect(result, out))
