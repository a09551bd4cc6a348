"""The ``frmask`` command: a thin click layer over the library.

Heavy modules (numpy, pandas, matplotlib, onnxruntime, torch) are imported inside the commands that use
them, so ``frmask --help`` and every command start fast.
"""

from __future__ import annotations

import sys

import click

from frmask._version import __version__

EXAMPLE_SCORES = "example_scores.csv"


class FrmaskGroup(click.Group):
    """Turns input errors (ValueError, OSError: the library's errors name the file, line or index) into one
    clear line and exit status 1, never a traceback. Set FRMASK_DEBUG=1 to see the traceback."""

    def invoke(self, ctx):
        import os

        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (e.g. `frmask report ... | head`): stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(141) from None
        except (ValueError, OSError) as exc:
            if os.environ.get("FRMASK_DEBUG"):
                raise
            raise click.ClickException(str(exc)) from None


@click.group(cls=FrmaskGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="frmask")
def main():
    """frmask: masked face recognition evaluation (synthetic masks, exact ISO/IEC 19795-1 metrics)."""
    command = click.get_current_context().invoked_subcommand
    if command not in SHARED_COMMANDS:
        from frmask.distributed import env

        if env().world > 1:  # K copies of a one-process command would race to write the same files
            raise click.UsageError(f"frmask {command} runs as one process; under torchrun only "
                                   f"{', '.join(sorted(SHARED_COMMANDS))} share the work (README: several processes)")


#: the commands that run as several cooperating processes under torchrun (frmask.distributed)
SHARED_COMMANDS = frozenset({"score", "identify", "train"})


def _example_path():
    from frmask._resources import data_file

    return data_file(EXAMPLE_SCORES)


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.2f} %"


def _num(x, digits=4) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"


def _rate_label(x: float) -> str:
    return f"{100 * x:.4f}".rstrip("0").rstrip(".") + " %"


def format_report(rep, source: str) -> str:
    """A one-screen table of a verification report."""
    d = rep.to_dict()
    ci = "fmr100_ci_low" in d
    far = _rate_label(rep.far)
    rows = [
        ("FNMR @ FMR <= 1 %", "fmr100", _pct, d.get("fmr100_threshold")),
        ("FNMR @ FMR <= 0.1 %", "fmr1000", _pct, d.get("fmr1000_threshold")),
        ("EER", "eer", _pct, d.get("eer_threshold")),
        ("FDR", "fdr", lambda v: _num(v, 3), None),
        (f"TPR @ FAR <= {far}", "tpr_at_far", _pct, d.get("far_threshold")),
        (f"accuracy @ FAR <= {far}", "acc_at_far", _pct, d.get("far_threshold")),
        ("best accuracy", "max_accuracy", _pct, d.get("max_accuracy_threshold")),
    ]
    for key in d:
        if key.startswith("fnmr_at_fmr_") and not key.endswith("_threshold"):
            target = float(key[len("fnmr_at_fmr_"):])
            rows.append((f"FNMR @ FMR <= {_rate_label(target)}", key, _pct, d.get(key + "_threshold")))
    if "kfold_accuracy" in d:
        rows.append(("k-fold accuracy", "kfold_accuracy",
                     lambda v: f"{_pct(v)} ± {100 * d['kfold_std']:.2f}", None))
    head = (f"{source}: {rep.n_genuine:,} genuine, {rep.n_impostor:,} impostor comparisons, "
            f"{rep.n_fta} failure(s) to acquire; convention {rep.convention}")
    lines = [head, ""]
    header = f"  {'metric':<26} {'key':<20} {'value':>16}  {'threshold':>10}"
    if ci:
        header += f"  {'CI':>22}"
    lines += [header, "  " + "-" * (len(header) - 2)]
    for label, key, fmt, thr in rows:
        line = f"  {label:<26} {key:<20} {fmt(d[key]):>16}  {_num(thr):>10}"
        if ci and f"{key}_ci_low" in d:
            line += f"  [{_pct(d[key + '_ci_low'])}, {_pct(d[key + '_ci_high'])}]".rjust(24)
        lines.append(line)
    if rep.notes:
        lines.append("")
        lines += [f"note: {n}" for n in rep.notes]
    return "\n".join(lines)


@main.command()
@click.argument("scores", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "json_out", metavar="FILE", help="Write the report as JSON to FILE ('-' for stdout).")
@click.option("--csv", "csv_out", metavar="FILE", help="Write the report as a one-row CSV to FILE ('-' for stdout).")
@click.option("--plot", "plot_out", metavar="FILE", help="Write the DET curve (probit axes) to FILE (.png/.pdf/.svg).")
@click.option("--hist", "hist_out", metavar="FILE", help="Write genuine/impostor score histograms to FILE.")
@click.option("--fmr", "fmr_targets", type=float, multiple=True, metavar="RATE",
              help="Extra FMR target for an FNMR @ FMR operating point (repeatable), e.g. --fmr 0.0001.")
@click.option("--far", type=float, default=0.002, show_default=True, help="FAR of tpr_at_far / acc_at_far.")
@click.option("--distance", is_flag=True, help="Scores are distances (lower = same person).")
@click.option("--convention", type=click.Choice(["iso", "pyeer", "insightface"]), default="iso",
              show_default=True, help="Reproduce another tool's definitions (default: strict ISO).")
@click.option("--fta", type=click.Choice(["reject", "exclude", "error"]), default="reject", show_default=True,
              help="Failures to acquire (empty/nan scores): count as non-matches, exclude, or stop.")
@click.option("--ci", "ci_level", type=float, default=None, is_flag=False, flag_value=0.95, metavar="[LEVEL]",
              help="Add bootstrap confidence intervals (default level 0.95; by subject when the file has "
                   "subject_a/subject_b columns).")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap resamples for --ci.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed for --ci.")
@click.option("--folds", type=click.IntRange(min=1), default=10, show_default=True,
              help="Folds of the k-fold accuracy (at least 1).")
def metrics(scores, json_out, csv_out, plot_out, hist_out, fmr_targets, far, distance, convention, fta, ci_level,
            n_boot, seed, folds):
    """Verification metrics of a score file: SCORES is a CSV with columns score,label (1 genuine, 0 impostor)
    and optionally subject_a,subject_b. Without SCORES, the bundled example file is used."""
    from frmask._atomic import atomic_paths
    from frmask.io.scores_csv import REPORT_BYTES_PER_ROW, read_score_table
    from frmask.metrics import pairs_report

    for option, path in (("--plot", plot_out), ("--hist", hist_out)):
        if path and not path.lower().endswith((".png", ".pdf", ".svg")):
            raise click.BadParameter(f"{path}: use a .png, .pdf or .svg file name", param_hint=option)
    if scores is None:
        source = _example_path()
        click.echo(f"no score file given: using the bundled example {EXAMPLE_SCORES} "
                   f"(synthetic scores, see README)", err=True)
    else:
        source = scores
    name = getattr(source, "name", str(source))
    try:
        table = read_score_table(source, bytes_per_row=REPORT_BYTES_PER_ROW)
        rep = pairs_report(table.scores, table.labels, subjects_a=table.subject_a, subjects_b=table.subject_b,
                           folds=folds, convention=convention, higher_is_genuine=not distance, fta=fta, far=far,
                           fmr_targets=fmr_targets, ci=ci_level, n_boot=n_boot, seed=seed)
    except MemoryError:
        raise ValueError(f"{source}: out of memory (the report needs about {REPORT_BYTES_PER_ROW} bytes per row "
                         f"of the file, more with --ci)") from None
    # Every output is rendered first and written to a temporary beside its target; they replace their
    # targets together at the end, so a failing output leaves none of them behind.
    outputs = []  # (label, path, write(tmp))
    stdout_used = False
    for label, path, render in (("JSON", json_out, lambda: rep.to_json() + "\n"),
                                ("CSV", csv_out, lambda: rep.to_frame().to_csv(index=False))):
        if path == "-":
            click.echo(render(), nl=False)
            stdout_used = True
        elif path:
            text = render()
            outputs.append((label, path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8")))
    if plot_out or hist_out:
        from frmask.metrics import split_by_label
        from frmask.metrics.plots import plot_det, plot_score_histograms, save_figure

        g, i = split_by_label(table.scores, table.labels)
        if plot_out:
            fig = plot_det({name: (g, i)}, higher_is_genuine=not distance, fta=fta)
            outputs.append(("DET plot", plot_out, lambda tmp, fig=fig: save_figure(fig, plot_out, into=tmp)))
        if hist_out:
            marks = {"threshold at FMR 1 %": rep["fmr100_threshold"],
                     "threshold at FMR 0.1 %": rep["fmr1000_threshold"]}
            fig = plot_score_histograms(g, i, title=name, threshold=marks)
            outputs.append(("histograms", hist_out, lambda tmp, fig=fig: save_figure(fig, hist_out, into=tmp)))
    with atomic_paths([path for _, path, _ in outputs]) as temporaries:
        for (_, _, write), tmp in zip(outputs, temporaries):
            write(tmp)
    if not stdout_used:
        click.echo(format_report(rep, name))
        for label, path, _ in outputs:
            click.echo(f"wrote {label}: {path}")


def _workers_option(ctx, param, value) -> int:
    """--workers: 'auto' (the cores available to this process) or a positive integer."""
    from frmask._cores import resolve_workers

    try:
        return resolve_workers(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.option("--benchmark", metavar="NAME", help="Benchmark name of the .bin: lfw, cfp_fp, cfp_ff, agedb_30, calfw or cplfw.")
@click.option("--data", type=click.Path(dir_okay=False), help="The insightface .bin file to mask.")
@click.option("--images", type=click.Path(file_okay=False), help="Or a folder of face images (detected, aligned to 112x112).")
@click.option("--out", required=True, type=click.Path(), help="The masked .bin to write, or the output folder.")
@click.option("--mode", default="masked-vs-masked", show_default=True,
              type=click.Choice(["none", "masked-vs-masked", "masked-vs-nonmasked", "legacy-maskinv"]),
              help="Which .bin images get a mask (masked-vs-nonmasked: the second image of each pair).")
@click.option("--mask-type", default="surgical", show_default=True,
              help="Built-in mask drawn by frmask (surgical, n95, kn95, cloth), or with --template DIR the name of a "
                   "MaskTheFace mask (e.g. surgical_blue, KN95, cloth).")
@click.option("--template", type=click.Path(), help="A template instead: maskinv_mask_img.png, or a MaskTheFace folder "
              "(or its masks.cfg).")
@click.option("--colors", default="realistic", show_default=True,
              help="Palette name, 'uniform' (random RGB as in the paper), or a published colour file (idx,[r g b]).")
@click.option("--coverage", type=click.Choice(["low", "medium", "high"]),
              help="Nose coverage of a built-in mask: low (nose exposed), medium (tip covered), high (on the nose "
                   "bridge, the default).")
@click.option("--color", metavar="NAME", help="One named colour for every mask (light-blue, white, black, grey, red, "
              "green, ...: data/colors/named.csv) instead of drawing from --colors.")
@click.option("--jitter", type=float, default=0.0, show_default=True,
              help="Random anchor shifts up to this many pixels of a 112 crop (training augmentation; 0 to evaluate).")
@click.option("--warp", type=click.Choice(["homography", "piecewise"]), default="homography", show_default=True,
              help="Template warp: least-squares homography, or piecewise-affine (exact at every anchor).")
@click.option("--legacy", type=click.Choice(["maskinv"]), help="Reproduce the published rendering bit for bit "
              "(its defects included), only to compare with published numbers.")
@click.option("--detector", type=click.Choice(["yunet", "mtcnn"]), default="yunet", show_default=True,
              help="Face detector for --images.")
@click.option("--landmarks", type=click.Path(dir_okay=False),
              help="For --images: a CSV of landmarks (image,x1,y1,...,x5,y5) instead of detection.")
@click.option("--landmark-points", type=click.Choice(["auto", "5", "68"]), default="auto", show_default=True,
              help="MaskTheFace templates: place their anchors from dlib's 68 landmarks (the landmarks68 extra) or "
                   "at their average position in the 5-point frame; auto: 68 for folders when installed, 5 for a .bin.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option("--workers", default="auto", show_default=True, callback=_workers_option,
              help="Parallel workers (threads for a .bin, processes for a folder), or auto: the cores available "
                   "to this process; the output is the same for any count.")
def synth(benchmark, data, images, out, mode, mask_type, template, colors, coverage, color, jitter, warp, legacy,
          detector, landmarks, landmark_points, seed, workers):
    """Draw synthetic masks deterministically onto an aligned insightface .bin benchmark
    (--benchmark NAME --data FILE.bin) or a folder of face images (--images DIR).

    A .bin run writes OUT (atomically), OUT.masks.csv (what each image got) and OUT.preview.png. A folder
    run writes the masked 112x112 faces under OUT with the same structure, plus masks.csv, failures.csv
    (images with no face found, never dropped silently) and preview.png."""
    from frmask.synth.benchmark import MaskSpec, check_benchmark, check_spec, synth_bin

    if bool(images) == bool(data):
        raise click.UsageError("give either --benchmark NAME --data FILE.bin, or --images DIR")
    if data and not benchmark:
        raise click.UsageError("--data needs --benchmark NAME (it is part of every image's seed)")
    spec = MaskSpec(mask_type=mask_type, template=template, colors=colors, jitter=jitter, legacy=legacy, warp=warp,
                    coverage=coverage, color=color)
    check_spec(spec)  # a bad coverage, colour or template fails before any work
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="img", desc="masking", leave=False)
    progress = bar.update if bar else None
    if images:
        from frmask.synth.folder import synth_folder

        summary = synth_folder(images, out, spec=spec, seed=seed, detector=detector, landmarks_csv=landmarks,
                               workers=workers, progress=progress, landmarks=landmark_points)
        if bar:
            bar.close()
        click.echo(f"{images}: {summary.n_masked:,} of {summary.n_images:,} images masked in {summary.seconds:.2f} s; "
                   f"{len(summary.failures)} failure(s)")
        for rel, reason in summary.failures[:10]:
            click.echo(f"  failed: {rel}: {reason}")
        if len(summary.failures) > 10:
            click.echo(f"  ... {len(summary.failures) - 10} more in {summary.outputs['failures']}")
    else:
        check_benchmark(benchmark)
        summary = synth_bin(data, out, benchmark=benchmark, mode=mode, spec=spec, seed=seed, workers=workers,
                            progress=progress, landmarks="5" if landmark_points == "auto" else landmark_points)
        if bar:
            bar.close()
        rate = summary.n_images / summary.seconds if summary.seconds else float("inf")
        click.echo(f"{benchmark} ({mode}): {summary.n_pairs:,} pairs, {summary.n_masked:,} of {summary.n_images:,} "
                   f"images masked in {summary.seconds:.2f} s ({rate:,.0f} images/s)")
    for label, path in summary.outputs.items():
        click.echo(f"wrote {label}: {path}")


@main.command("pack-bin")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .bin file to write.")
@click.option("--pairs", "n_pairs", type=click.IntRange(min=1), default=6000, show_default=True,
              help="Number of pairs: a multiple of 2 x --folds (half genuine, half impostor in every fold).")
@click.option("--folds", type=click.IntRange(min=1), default=10, show_default=True,
              help="Contiguous folds of equal size, as LFW's View 2 (k-fold accuracy).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the pair selection.")
@click.option("--disjoint", is_flag=True, help="Identity-disjoint folds, as LFW's (each identity in one fold).")
@click.option("--stop-on-error", is_flag=True,
              help="Stop at the first image that cannot be decoded (default: leave it out, list it, go on).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def pack_bin_command(folder, out, n_pairs, folds, seed, disjoint, stop_on_error, progress):
    """Build an insightface .bin benchmark (like lfw.bin) from FOLDER/<identity>/<image> of aligned 112x112
    faces: seeded pairs in LFW-style folds, JPEG/PNG files stored byte for byte. Score it with
    frmask score MODEL --protocol lfw --data OUT, mask it with frmask synth --benchmark lfw --data OUT."""
    from tqdm import tqdm

    from frmask.cli_output import echo_failures
    from frmask.io.bin_pack import pack_bin

    with tqdm(disable=None if progress else True, unit="img", desc="pack-bin") as bar:  # None: only on a terminal
        summary = pack_bin(folder, out, n_pairs=n_pairs, folds=folds, seed=seed, disjoint=disjoint,
                           stop_on_error=stop_on_error, progress=bar.update)
    click.echo(f"{folder}: {summary.n_images:,} images of {summary.n_identities:,} identities give "
               f"{summary.genuine_available:,} genuine and {summary.impostor_available:,} impostor pairs")
    folds_text = f"{summary.folds}{' identity-disjoint' if disjoint else ''} folds"
    click.echo(f"wrote {summary.path}: {summary.n_pairs:,} pairs ({summary.n_genuine:,} genuine) in {folds_text}, "
               f"seed {seed}; {summary.n_reencoded} image(s) re-encoded as PNG ({summary.seconds:.1f} s)")
    echo_failures(summary.failures)


from frmask.cli_eval import demo, report, score  # noqa: E402  (commands defined beside this module)
from frmask.cli_effect import effect  # noqa: E402
from frmask.cli_identify import identify  # noqa: E402
from frmask.train.commands import export_command, pack_command, train_command  # noqa: E402

for _command in (score, report, demo, effect, identify, train_command, export_command, pack_command):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
