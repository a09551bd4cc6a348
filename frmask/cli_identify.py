"""``frmask identify``: 1:N identification on identity folders (:mod:`frmask.identify`, registered in
:mod:`frmask.cli`)."""

from __future__ import annotations

from pathlib import Path

import click

from frmask._format import percent
from frmask.cli_eval import (
    _embedder,
    _open_cache,
    _progress,
    cache_options,
    embedding_options,
    mask_options,
    mask_settings,
)


def _pct(x) -> str:
    return percent(x, missing="n/a")


def _ci(ci) -> str:
    return f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""


def format_identify(result, out) -> str:
    """The summary printed after a run."""
    from frmask.protocols.gallery import short_note

    m, emb = result.metrics, result.run["embedding"]
    lines = [f"{result.run['model']['name']} on {result.split.description}",
             f"{len(result.split.images):,} images ({emb['cached']:,} from the cache, {emb['computed']:,} embedded in "
             f"{emb['seconds']:.1f} s), {len(result.failures)} failure(s) to acquire "
             f"({m['n_gallery_fta']} in the gallery, not enrolled)",
             f"gallery {m['n_gallery']:,} templates of {m['n_gallery_identities']:,} identities; searches "
             f"{m['n_mated']:,} mated, {m['n_nonmated']:,} non-mated", "",
             f"  rank-1          {_pct(m['rank1'])}{_ci(m.get('rank1_ci'))}"]
    for r in (5, 10, 20):
        if r <= len(m["cmc"]):
            lines.append(f"  CMC rank {r:<6} {_pct(m['cmc'][r - 1])}{_ci((m.get('cmc_ci') or [None] * r)[r - 1])}")
    for key, p in m["fnir_at_fpir"].items():
        lines.append(f"  FNIR @ FPIR <= {float(key):g}: {_pct(p['fnir'])}{_ci(p.get('fnir_ci'))} at threshold "
                     f"{p['threshold']:.4f} (FPIR {_pct(p['fpir'])})")
    if m["fnir_at_fpir_unresolved"]:
        lines.append(f"  FPIR {', '.join(m['fnir_at_fpir_unresolved'])}: not resolved by {m['n_nonmated']:,} non-mated "
                     f"searches (needs at least 1/target)")
    note = short_note(result.split)
    if note:
        lines.append("note: " + note)
    if out:
        lines.append(f"wrote {out}/: report.html, metrics.json, searches.csv, report.md, cmc.png"
                     + (", fnir_fpir.png" if m["n_nonmated"] else "") + (", failures.csv" if result.failures else ""))
    return "\n".join(lines)


@click.command("identify")
@click.argument("model")
@click.option("--data", required=True, type=click.Path(file_okay=False),
              help="Identity folders: DIR/<identity>/<image files>.")
@click.option("--gallery-per-identity", "k", required=True, type=int, metavar="K",
              help="Enrol the first K images (by file name) of each identity; the rest are mated probes.")
@click.option("--nonmated-fraction", type=float, default=0.0, show_default=True, metavar="F",
              help="Leave round(F * identities) identities, seeded, out of the gallery: their images are non-mated "
                   "probes (open set).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the left-out identities, the masks and the bootstrap.")
@click.option("--mask", default="none", show_default=True,
              type=click.Choice(["none", "masked-vs-nonmasked", "masked-vs-masked"]),
              help="masked-vs-nonmasked: probes masked, gallery not (as NIST); masked-vs-masked: both.")
@mask_options
@click.option("--align", type=click.Choice(["auto", "detect", "none"]), default="auto", show_default=True,
              help="Unmasked images: auto takes 112x112 images as aligned crops and detects the others.")
@embedding_options
@click.option("--ci", "ci_level", type=float, default=None, is_flag=False, flag_value=0.95, metavar="[LEVEL]",
              help="Subject-bootstrap confidence intervals (default level 0.95).")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap resamples for --ci.")
@click.option("--fpir", "targets", type=float, multiple=True, metavar="RATE",
              help="FPIR target of an FNIR@FPIR point (repeatable; default 0.001, 0.01 and 0.1).")
@click.option("--block", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Probes searched per matrix product.")
@cache_options
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
def identify(model, data, k, nonmated_fraction, seed, mask, mask_type, template, colors, coverage, color, align,
             detector, flip, device, batch_size, threads, layout, channels, normalization, size, input_name,
             output_name, ci_level, n_boot, targets, block, cache, no_cache, out):
    """1:N identification of the ONNX model MODEL (a path, or a zoo name: sface) on identity folders: enrol K
    images per identity, search every other image in the gallery, and report rank-1, the CMC and FNIR at FPIR
    (NIST IR 8271 definitions), with the CMC and FNIR(FPIR) figures."""
    options = dict(locals())
    from frmask.distributed import process_group

    with process_group(device) as session:  # under torchrun: the K processes share the work, rank 0 writes
        text = _identify(**options)
    if session.is_main:
        click.echo(text)


def _identify(model, data, k, nonmated_fraction, seed, mask, mask_type, template, colors, coverage, color, align,
              detector, flip, device, batch_size, threads, layout, channels, normalization, size, input_name,
              output_name, ci_level, n_boot, targets, block, cache, no_cache, out) -> str:
    from frmask.distributed import on_main
    from frmask.identify import run_identify
    from frmask.identify_report import write_identify_run
    from frmask.metrics.identification import DEFAULT_FPIR_TARGETS
    from frmask.protocols.gallery import split_gallery
    from frmask.report import check_out_dir

    if ci_level is not None and not (0 < ci_level < 1):
        raise click.BadParameter(f"{ci_level}: the level must lie strictly between 0 and 1", param_hint="--ci")
    check_out_dir(out)  # before the long part: a refused --out is said at once
    spec, masked = mask_settings(mask, mask_type, template, colors, coverage, color, seed)
    split = split_gallery(data, k, nonmated_fraction=nonmated_fraction, seed=seed, mask=mask, spec=spec,
                          align=align, detector=detector)
    embedder = _embedder(model, device, batch_size, flip, layout, channels, normalization, size, input_name,
                         output_name)
    store = _open_cache(cache, no_cache)
    bar, search_bar = _progress(len(split.images), "embedding"), None
    try:
        search_bar = _progress(split.n_probes, "searching")
        result = run_identify(embedder, split, model_name=Path(model).name, detector=detector, cache=store,
                              threads=threads, progress=bar.update, search_progress=search_bar.update,
                              device=embedder.torch_device,
                              ci=ci_level, n_boot=n_boot, seed=seed, block=block,
                              targets=targets or DEFAULT_FPIR_TARGETS,
                              extra={"data": str(data), "align": align, **masked})
    finally:
        bar.close()
        if search_bar is not None:
            search_bar.close()
        if store is not None:
            store.close()
    on_main(lambda: write_identify_run(result, out))  # the others wait for it, and get its error
    return format_identify(result, out)
