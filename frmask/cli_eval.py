"""The evaluation commands of the ``frmask`` CLI: ``score``, ``report`` and ``demo`` (registered in
:mod:`frmask.cli`). Heavy modules are imported inside the commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

PROTOCOL_NAMES = ("mfr2", "csv", "folder", "lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw")
SFACE_THRESHOLD = 0.363  # OpenCV's published cosine threshold for SFace (same person when >= 0.363)


def _parse_size(value):
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected WxH, e.g. 112x112", param_hint="--size") from None
    return (w, h)


def _progress(total: int, desc: str):
    from tqdm import tqdm

    from frmask.distributed import is_main

    return tqdm(total=total, unit="img", desc=desc, disable=None if is_main() else True, leave=False,
                file=sys.stderr)


def _open_cache(cache, no_cache):
    if no_cache:
        return None
    from frmask.embed.cache import EmbeddingCache, default_cache_path

    return EmbeddingCache(cache or default_cache_path())


def _embedder(model, device, batch_size, flip, layout, channels, normalization, size, input_name, output_name):
    from frmask.embed.onnx_model import OnnxEmbedder

    overrides = {k: v for k, v in dict(layout=layout, channels=channels, normalization=normalization,
                                        size=_parse_size(size), input_name=input_name,
                                        output_name=output_name).items() if v is not None}
    return OnnxEmbedder(model, device=device, batch_size=batch_size, flip=flip, **overrides)


def _options(*decorators):
    """One decorator applying click options in the order given (as if written one above the other)."""

    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


#: the mask options of ``frmask synth`` that masking commands share (``--mask-type`` ... ``--color``)
mask_options = _options(
    click.option("--mask-type", default="surgical", show_default=True, help="Mask for --mask (as in frmask synth)."),
    click.option("--template", type=click.Path(), help="Mask template for --mask (as in frmask synth)."),
    click.option("--colors", default="realistic", show_default=True,
                 help="Mask colours for --mask (as in frmask synth)."),
    click.option("--coverage", type=click.Choice(["low", "medium", "high"]),
                 help="Nose coverage for --mask (as in frmask synth)."),
    click.option("--color", metavar="NAME", help="One named mask colour for --mask (as in frmask synth)."))

#: how images are embedded (detector, model overrides), shared by the commands that embed; ``--cache`` last
embedding_options = _options(
    click.option("--detector", type=click.Choice(["yunet", "mtcnn"]), default="yunet", show_default=True),
    click.option("--flip", is_flag=True, help="Flip test: add the embedding of the mirrored crop."),
    click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="auto", show_default=True),
    click.option("--batch-size", type=int, default=64, show_default=True),
    click.option("--threads", type=int, default=2, show_default=True, help="Image preparation threads."),
    click.option("--layout", type=click.Choice(["NCHW", "NHWC"]), help="Override the model's input layout."),
    click.option("--channels", type=click.Choice(["RGB", "BGR"]), help="Override the model's channel order."),
    click.option("--normalization", type=click.Choice(["raw", "pm1", "unit"]),
                 help="Override the input scaling: raw 0..255, pm1 (x-127.5)/127.5, unit 0..1."),
    click.option("--size", metavar="WxH", help="Override the model's input size."),
    click.option("--input-name", help="Override the image input's name."),
    click.option("--output-name", help="Override the embedding output's name."))

cache_options = _options(
    click.option("--cache", type=click.Path(dir_okay=False), help="Embedding cache file (default: ~/.cache/frmask)."),
    click.option("--no-cache", is_flag=True, help="Do not read or write the embedding cache."))


def mask_settings(mask, mask_type, template, colors, coverage, color, seed):
    """``(MaskSpec, provenance dict)`` of the mask options (the dict is empty for ``--mask none``)."""
    from frmask.synth.benchmark import MaskSpec

    spec = MaskSpec(mask_type=mask_type, template=template, colors=colors, coverage=coverage, color=color)
    extra = {}
    if mask != "none":
        extra.update(mask=mask, mask_type=mask_type, template=template, colors=colors, seed=seed,
                     **{k: v for k, v in {"coverage": coverage, "color": color}.items() if v is not None})
    return spec, extra


def run_score(embedder, protocol, out, *, model_name, detector, cache, far, fta, convention, threads, extra=None,
              gallery=12, fmr_targets=(), all_scores=False):
    """Score, write the run folder, and return (result, markdown table). Exhaustive (folder) protocols go
    through :func:`frmask.scoring_exhaustive.score_folder`, the others through :func:`frmask.scoring.score_protocol`."""
    from frmask.distributed import on_main
    from frmask.report import check_out_dir, markdown_table, write_run

    if out:
        check_out_dir(out)  # before the long part: a refused --out is said at once
    bar = _progress(len(protocol.images), f"embedding {protocol.name}")
    common = dict(model_name=model_name, detector=detector, cache=cache, threads=threads, progress=bar.update, far=far,
                  fta=fta, fmr_targets=fmr_targets, extra=extra)
    try:
        if getattr(protocol, "ordered", None) is not None:  # a FolderProtocol: every pair, block-wise
            from frmask.scoring_exhaustive import score_folder

            if convention != "iso":
                raise ValueError(f"--convention {convention} needs listed pairs; the folder protocol reports the "
                                 f"ISO rules (--convention iso)")
            result = score_folder(embedder, protocol, all_scores=all_scores, **common)
        else:
            from frmask.scoring import score_protocol

            result = score_protocol(embedder, protocol, convention=convention, **common)
    finally:
        bar.close()
    if out:
        on_main(lambda: write_run(result, out, gallery=gallery))  # the others wait for it, and get its error
    rows = [(name, {**rep.to_dict()}) for name, rep in result.reports.items()]
    return result, markdown_table(rows)


def _summary(result, table: str, out) -> str:
    emb = result.run["embedding"]
    lines = [f"{result.run['model']['name']} on {result.protocol.description}",
             f"{len(result.protocol.images):,} images ({emb['cached']:,} from the cache, {emb['computed']:,} embedded "
             f"in {emb['seconds']:.1f} s), {len(result.failures)} failure(s) to acquire", "", table.rstrip()]
    for i, reason in list(sorted(result.failures.items()))[:5]:
        lines.append(f"  failed: {result.protocol.images[i].key}: {reason}")
    if len(result.failures) > 5:
        lines.append(f"  ... {len(result.failures) - 5} more in failures.csv")
    exhaustive = result.run.get("exhaustive")
    if exhaustive:
        lines.insert(2, f"{exhaustive['n_pairs']:,} pairs compared in {exhaustive['n_blocks']} blocks on "
                        f"{exhaustive['device']}; scores.csv holds {exhaustive['scores_csv']}")
        notes = result.reports["all"].notes
        lines += [f"  note: {n}" for n in notes if "histogram" in n]
    if out:
        lines.append(f"wrote {out}/: report.html, metrics.json, scores.csv, report.md, det.png, histograms.png"
                     + (", gallery.json, gallery/" if (Path(out) / "gallery.json").is_file() else "")
                     + (", failures.csv" if result.failures else ""))
    return "\n".join(lines)


@click.command()
@click.argument("model")
@click.option("--protocol", required=True, type=click.Choice(PROTOCOL_NAMES),
              help="mfr2 (a folder), csv (path_a,path_b,label), folder (one subfolder of images per identity, every "
                   "pair compared), or an insightface .bin benchmark name.")
@click.option("--data", required=True, type=click.Path(),
              help="The MFR2 folder, the pairs CSV, the identity folders, or the .bin file.")
@click.option("--out", type=click.Path(), help="Run folder to write (metrics.json, scores.csv, report.md, plots).")
@click.option("--mask", default="none", show_default=True,
              type=click.Choice(["none", "masked-vs-masked", "masked-vs-nonmasked", "legacy-maskinv"]),
              help=".bin benchmarks and folder: mask on the fly as `frmask synth` does (same seed, same images).")
@mask_options
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the masks for --mask.")
@click.option("--align", type=click.Choice(["auto", "detect", "none"]), default=None,
              help="How images are aligned (default: detect for mfr2, auto for csv: 112x112 images are taken as "
                   "aligned crops).")
@click.option("--root", type=click.Path(file_okay=False), help="csv: folder the relative paths start from.")
@embedding_options
@click.option("--far", type=float, default=0.002, show_default=True, help="FAR of TPR@FAR and ACC@FAR.")
@click.option("--fta", type=click.Choice(["reject", "exclude", "error"]), default="reject", show_default=True,
              help="Failures to acquire: count as non-matches, exclude, or stop.")
@click.option("--convention", type=click.Choice(["iso", "pyeer", "insightface"]), default="iso", show_default=True)
@cache_options
@click.option("--gallery", "gallery", type=click.IntRange(min=0), default=12, show_default=True, metavar="K",
              help="report.html shows the K lowest-scoring genuine and K highest-scoring impostor pairs (0: none).")
@click.option("--fmr", "fmr_targets", type=float, multiple=True, metavar="RATE",
              help="Extra FMR target for an exact FNMR @ FMR operating point (repeatable), e.g. --fmr 1e-5.")
@click.option("--all-scores", is_flag=True,
              help="folder: write every pair to scores.csv (by default only up to 1e6 pairs; above, the genuine "
                   "pairs and the top impostors).")
def score(model, protocol, data, out, mask, mask_type, template, colors, coverage, color, seed, align, root, detector,
          flip, device, batch_size, threads, layout, channels, normalization, size, input_name, output_name, far, fta,
          convention, cache, no_cache, gallery, fmr_targets, all_scores):
    """Score the ONNX face-recognition MODEL (a path, or a zoo name: sface) on a protocol: embed every image,
    compare every pair, and report exact ISO/IEC 19795-1 metrics per scenario."""
    options = dict(locals())
    from frmask.distributed import process_group

    with process_group(device) as session:  # under torchrun: the K processes share the work, rank 0 writes
        text = _score(**options)
    if session.is_main:
        click.echo(text)


def _score(model, protocol, data, out, mask, mask_type, template, colors, coverage, color, seed, align, root,
           detector, flip, device, batch_size, threads, layout, channels, normalization, size, input_name,
           output_name, far, fta, convention, cache, no_cache, gallery, fmr_targets, all_scores) -> str:
    from frmask.protocols import load_protocol

    spec, masked = mask_settings(mask, mask_type, template, colors, coverage, color, seed)
    proto = load_protocol(protocol, data, mask=mask, spec=spec, seed=seed, align=align, root=root)
    embedder = _embedder(model, device, batch_size, flip, layout, channels, normalization, size, input_name,
                         output_name)
    extra = {"data": str(data), **masked}
    store = _open_cache(cache, no_cache)
    try:
        result, table = run_score(embedder, proto, out, model_name=Path(model).name, detector=detector, cache=store,
                                  far=far, fta=fta, convention=convention, threads=threads, extra=extra,
                                  gallery=gallery, fmr_targets=fmr_targets, all_scores=all_scores)
    finally:
        if store is not None:
            store.close()
    return _summary(result, table, out)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--scenario", "scenarios", multiple=True, help="Only these scenarios (repeatable).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Also write comparison.md, comparison.csv and det.png (every run in one DET figure) here.")
@click.option("--html", "html", type=click.Path(dir_okay=False),
              help="Write an HTML page: the run's own page for one run, a comparison for several.")
def report(runs, scenarios, out, html):
    """Compare run folders of `frmask score` side by side (one row per run and scenario)."""
    from frmask._atomic import write_text_atomic
    from frmask.report import compare_runs, comparison_det, comparison_frame, markdown_table

    if html:  # first, so that a run with missing files still gets a page saying what is missing
        from frmask.report_html import write_comparison_html, write_report_html

        if len(runs) == 1:
            write_report_html(runs[0], html)
        else:
            write_comparison_html(runs, html, scenarios=scenarios)
        click.echo(f"wrote {html}")
    rows = compare_runs(runs, scenarios=scenarios)
    labels = [f"{r} / {s}" for r, s, _ in rows]
    if len(set(labels)) != len(labels):
        raise ValueError("two runs have the same folder name; give distinct run folders")
    table = markdown_table([(label, d) for label, (_, _, d) in zip(labels, rows)], first="run / scenario")
    click.echo(table.rstrip())
    if out:
        out = Path(out)
        write_text_atomic(out / "comparison.md", table)
        write_text_atomic(out / "comparison.csv", comparison_frame(rows).to_csv(index=False))
        comparison_det(runs, out / "det.png", scenarios=scenarios)
        click.echo(f"wrote {out}/: comparison.md, comparison.csv, det.png")


@click.command()
@click.option("--out", type=click.Path(file_okay=False), default="frmask-demo", show_default=True,
              help="Folder for the contact sheet (and the MFR2 run with --data).")
@click.option("--data", type=click.Path(file_okay=False), help="An MFR2 folder: also run the full protocol and report.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the mask colours.")
def demo(out, data, seed):
    """Mask scikit-image's astronaut with every built-in mask, embed each version with SFace, and print
    how similar each masked face stays to the unmasked one; writes a contact sheet. No download needed."""
    from frmask.demo import astronaut_demo, format_demo

    out = Path(out)
    result = astronaut_demo(out, seed=seed)
    click.echo(format_demo(result, SFACE_THRESHOLD))
    if data:
        from frmask.embed.onnx_model import OnnxEmbedder
        from frmask.protocols import load_protocol

        store = _open_cache(None, False)
        try:
            res, table = run_score(OnnxEmbedder("sface"), load_protocol("mfr2", data), out / "mfr2", model_name="sface",
                                   detector="yunet", cache=store, far=0.002, fta="reject", convention="iso",
                                   threads=2)
        finally:
            if store is not None:
                store.close()
        click.echo("")
        click.echo(_summary(res, table, out / "mfr2"))
