"""Click commands of the trainer: ``frmask train``, ``frmask export``, ``frmask pack``.

Registered by :mod:`frmask.cli` (``main.add_command``). torch and the training modules are imported
inside the command bodies, so ``frmask --help`` stays fast. Input errors are ValueError / OSError with a
message naming the file or key (the main command turns them into one line).
"""

from __future__ import annotations

import os

import click

VARIANT_CHOICES = ("elasticface", "aug", "lg", "hg")


@click.command("train")
@click.option("--variant", required=True, type=click.Choice(VARIANT_CHOICES),
              help="elasticface (no masks), aug (masks, lambda 0), lg (KD lambda 100), hg (100 -> 3000 at 77 %).")
@click.option("--data", required=True, type=click.Path(path_type=str),
              help="Training data: a RecordIO train.rec (train.idx beside it), a folder holding train.rec, or a "
                   "folder with one sub-folder per identity.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Run folder (checkpoints, config.toml, log.csv, losses.png).")
@click.option("--teacher", type=click.Path(path_type=str), default=None,
              help="Frozen teacher for lg/hg: a run folder (its latest checkpoint), a checkpoint, a backbone .pth or "
                   "an .onnx model (fed pm1 RGB NCHW unless teacher_channels / teacher_normalization are set).")
@click.option("--init", "init", type=click.Path(path_type=str), default=None,
              help="Start the student backbone from these weights: a run folder, a checkpoint or a backbone .pth "
                   "(insightface / ElasticFace keys). Default: random initialisation.")
@click.option("--scale", default="paper", show_default=True,
              help="Scale config: paper (MS1MV2, iresnet100, batch 512, 295k steps), small (CPU test scale) or a "
                   ".toml path.")
@click.option("--backbone", default=None, help="Backbone, e.g. r18, r50, r100 (overrides the scale's).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Total optimisation steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Global batch size (all processes together).")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda (cuda:LOCAL_RANK under torchrun), cuda:N, or auto (cuda when available).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any config field (TOML value), e.g. --set lr=0.05 --set eval_bins='[\"lfw.bin\"]'. "
                   "Repeatable.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def train_command(variant, data, out, teacher, init, scale, backbone, steps, batch_size, device, resume, sets,
                  progress):
    """Train a MaskInv / ElasticFace student (single process, or DDP under torchrun)."""
    from frmask.train.config import load_config, parse_set

    overrides = {}
    if backbone is not None:
        from frmask.train.backbones import canonical_name

        overrides["backbone"] = canonical_name(backbone)
    if init is not None:
        overrides["init"] = init
    if steps is not None:
        overrides["steps"] = steps
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    extra = parse_set(sets)
    clash = sorted(set(extra) & set(overrides))
    if clash:
        raise ValueError(f"--set {clash[0]}=... repeats an option given directly (--{clash[0].replace('_', '-')})")
    overrides.update(extra)
    if "backbone" in overrides:
        from frmask.train.backbones import canonical_name

        overrides["backbone"] = canonical_name(overrides["backbone"])
    config = load_config(variant, scale, overrides)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"

    from frmask.train.loop import train

    result = train(config, data, out, teacher=teacher, resume=resume, device=device, progress=progress)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        raise SystemExit(130 if result.interrupted else 0)
    if result.interrupted:
        click.echo(f"interrupted at step {result.step} of {result.steps}; checkpoint {result.checkpoint}; "
                   f"continue with --resume", err=True)
        raise SystemExit(130)
    click.echo(f"trained {config.variant} to step {result.step} of {result.steps} "
               f"({result.images_per_s:.1f} images/s); checkpoint {result.checkpoint}")
    click.echo(f"log {result.log}" + (f"; loss plot {result.plot}" if result.plot else ""))
    for name, value in result.metrics.items():
        click.echo(f"  {name}: {value:.4f}")


@click.command("export")
@click.argument("run", type=click.Path(exists=True, path_type=str))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="ONNX file to write.")
@click.option("--opset", type=click.IntRange(min=9), default=17, show_default=True, help="ONNX opset version.")
@click.option("--dynamo", is_flag=True,
              help="Use torch's torch.export-based exporter (needs the onnxscript package) instead of the "
                   "TorchScript-based one.")
def export_command(run, out, opset, dynamo):
    """Export a run's latest checkpoint (or a checkpoint / backbone file) to ONNX.

    Input "input": float32 (N, 3, 112, 112) RGB, (x - 127.5) / 127.5; output "embedding": (N, E). The file is
    verified against torch with onnxruntime (max abs difference <= 1e-4) before it is written.
    """
    from frmask.train.export import export_onnx

    result = export_onnx(run, out, opset=opset, dynamo=dynamo)
    click.echo(f"wrote {result.path}: {result.embedding_size}-d embeddings from {result.source}; "
               f"max abs difference to torch {result.max_abs_diff:.2e} (outputs up to {result.max_abs_output:.3g})")


@click.command("pack")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="RecordIO file to write (train.rec; train.idx is written beside it).")
@click.option("--align", type=click.Choice(("auto", "none", "detect")), default="auto", show_default=True,
              help="none: images are aligned 112x112 crops; detect: detect and align faces; auto: none when the "
                   "first image is 112x112.")
@click.option("--stop-on-error", is_flag=True,
              help="Stop at the first image that cannot be decoded (default: leave it out, list it, go on).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def pack_command(src, out, align, stop_on_error, progress):
    """Pack an identity folder (one sub-folder per identity) into MS1MV2-style RecordIO."""
    from tqdm import tqdm

    from frmask.cli_output import echo_failures
    from frmask.train.pack import pack_folder

    with tqdm(disable=None if progress else True, unit="img", desc="pack") as bar:  # None: only on a terminal
        summary = pack_folder(src, out, align=align, progress=bar.update, stop_on_error=stop_on_error)
    click.echo(f"wrote {summary.rec} and {summary.idx}: {summary.n_images} images of {summary.n_identities} "
               f"identities (align {summary.align}, {summary.seconds:.1f} s)")
    echo_failures(summary.failures)


COMMANDS = (train_command, export_command, pack_command)
