"""Benchmark: throughput of the trainer's step vs a bare torch loop, and model FLOPs utilisation on CUDA.

Both sides run, in the same process, one MaskInv-LG step per iteration on the same synthetic batch (already
on the device, so data loading is left out): student forward + backward (backbone under bf16 autocast, or
float16 with a GradScaler, and channels_last on CUDA; ElasticFace-Arc head in float32), teacher forward on the clean images, CE + 100 * KD
loss, gradient-norm clip, SGD step. The trainer side is :meth:`frmask.train.loop.Trainer.train_step`
(margins drawn from a per-step generator, schedules); the bare side is the same computation written
directly. Timings alternate between the two (best of ``--rounds``). The FLOPs of one step are counted
with ``torch.utils.flop_counter.FlopCounterMode`` on the bare step (never compiled: the counter sees every
operation) (matrix products and convolutions, forward and
backward) and divided by the step time; on CUDA, and wherever ``--peak-tflops`` is given, also by the
peak (default on CUDA 989 TFLOP/s, H100 SXM dense bf16) to give the model FLOPs utilisation.

Run by hand:  python benchmarks/bench_train.py                      # CPU: iresnet18, batch 16
              python benchmarks/bench_train.py --device cuda        # iresnet100, batch 256, bf16
              python benchmarks/bench_train.py --device cuda --amp-dtype float16 --compile
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from frmask.train.backbones import get_backbone
from frmask.train.config import load_config
from frmask.train.distill import kd_loss
from frmask.train.heads import get_head
from frmask.train.loop import Trainer
from frmask.train.teacher import TorchTeacher


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_setup(config, num_classes, device):
    """The same student, head, teacher and optimiser as the trainer builds, without the trainer."""
    torch.manual_seed(1)
    cuda = device.type == "cuda"
    backbone = get_backbone(config.backbone, embedding_size=config.embedding_size).to(device)
    teacher = get_backbone(config.backbone, embedding_size=config.embedding_size).to(device).eval()
    if cuda:
        backbone = backbone.to(memory_format=torch.channels_last)
        teacher = teacher.to(memory_format=torch.channels_last)
    for p in teacher.parameters():
        p.requires_grad_(False)
    head = get_head(config.head, embedding_size=config.embedding_size, num_classes=num_classes).to(device)
    opt = torch.optim.SGD([{"params": [p for p in backbone.parameters() if p.requires_grad]},
                           {"params": list(head.parameters())}], lr=config.scaled_lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)

    dtype = getattr(torch, config.amp_dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=cuda and dtype == torch.float16)

    def step(batch):
        with torch.autocast(device.type, dtype=dtype, enabled=cuda):
            emb = backbone(batch["student"])
            with torch.no_grad():
                target = teacher(batch["teacher"])
        margins = torch.normal(0.5, 0.05, (len(emb),), device=device)
        logits = head(emb.float(), batch["label"], margins)
        loss = F.cross_entropy(logits, batch["label"]) + 100.0 * kd_loss(emb, target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), config.clip_grad_norm)
        scaler.step(opt)
        scaler.update()

    return step


def time_steps(fn, steps: int, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--backbone", default=None, help="default: iresnet100 on CUDA, iresnet18 on the CPU")
    ap.add_argument("--batch", type=int, default=None, help="default: 256 on CUDA, 16 on the CPU")
    ap.add_argument("--classes", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per round (default 20 CUDA, 3 CPU)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile the trainer's backbone")
    ap.add_argument("--amp-dtype", default="bfloat16", choices=["bfloat16", "float16"],
                    help="autocast type on CUDA (float16 adds the trainer's GradScaler)")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="peak dense TFLOP/s of the device for the MFU figure (default on CUDA 989: H100 SXM bf16; "
                         "H200 the same)")
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    backbone = args.backbone or ("iresnet100" if cuda else "iresnet18")
    batch_size = args.batch or (256 if cuda else 16)
    steps = args.steps or (20 if cuda else 3)
    config = load_config("lg", "paper", {"backbone": backbone, "batch_size": batch_size, "compile": args.compile,
                                         "amp_dtype": args.amp_dtype})

    torch.manual_seed(0)
    teacher = TorchTeacher(get_backbone(backbone), device=device, amp=config.amp,
                           channels_last=config.channels_last, amp_dtype=config.amp_dtype)
    trainer = Trainer(config, args.classes, teacher=teacher, device=device)
    gen = torch.Generator().manual_seed(0)
    x = (torch.randint(0, 256, (batch_size, 3, 112, 112), generator=gen).float() - 127.5) / 127.5
    labels = torch.randint(0, args.classes, (batch_size,), generator=gen)
    batch = {"student": x.to(device), "teacher": x.flip(3).to(device), "label": labels.to(device)}
    if cuda:
        batch = {k: (v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v)
                 for k, v in batch.items()}
    bare = bare_setup(config, args.classes, device)

    counter = {"step": 0}

    def trainer_step():
        trainer.train_step(counter["step"], batch)
        counter["step"] += 1

    def bare_step():
        bare(batch)

    for fn in (trainer_step, bare_step):  # warm-up (cudnn autotuning, compilation)
        time_steps(fn, 3, device)
    best = {"trainer": float("inf"), "bare": float("inf")}
    for _ in range(args.rounds):
        best["bare"] = min(best["bare"], time_steps(bare_step, steps, device))
        best["trainer"] = min(best["trainer"], time_steps(trainer_step, steps, device))
    rate = {k: steps * batch_size / v for k, v in best.items()}
    print(f"{backbone}, batch {batch_size}, {args.classes} classes, device {device}"
          f"{f' ({args.amp_dtype} autocast, channels_last)' if cuda else ''}{', compiled' if args.compile else ''}")
    print(f"trainer step: {rate['trainer']:.1f} images/s; bare torch loop: {rate['bare']:.1f} images/s; "
          f"ratio {rate['trainer'] / rate['bare']:.3f} (target >= 0.9)")
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as flops:  # on the bare (never compiled) step: the same computation
        bare_step()
    total = flops.get_total_flops()
    achieved = total / (best["trainer"] / steps) / 1e12
    line = (f"FLOPs per step (student fwd+bwd, teacher fwd): {total / 1e12:.3f} TFLOP = "
            f"{total / batch_size / 1e9:.2f} GFLOP per image; {achieved:.2f} TFLOP/s")
    peak = args.peak_tflops if args.peak_tflops is not None else (989.0 if cuda else None)
    if peak:
        line += f" = MFU {achieved / peak:.1%} of {peak:g} TFLOP/s (target >= 40 % on a GPU)"
    print(line)

if __name__ == "__main__":
    main()
