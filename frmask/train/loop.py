"""The MaskInv training loop: student = backbone + margin head, optional frozen teacher, SGD, checkpoints.

Step ``s`` (0-based) of a run with global batch ``G`` over ``W`` processes:

1. the data sampler's batch ``s`` (:class:`frmask.train.data.TrainSampler`; each process its ``G / W`` slice);
2. the ElasticFace margins of the whole global batch are drawn from a generator seeded by
   ``(seed, s)`` and each process takes its slice, so ``W`` processes train as one process on the same
   global batch (with ``sync_bn`` for BatchNorm; up to floating-point summation order);
3. loss = CE(head(student(masked image)), label) + lambda(s) * kd_loss(student embedding,
   teacher(clean image)); the teacher is run only when lambda(s) > 0, frozen, in eval mode;
4. backward (DDP averages the gradients), gradient-norm clip of the backbone's gradients (as the
   ElasticFace code: ``clip_grad_norm_(backbone.parameters(), 5)``; the head is not clipped), one SGD step
   for backbone and head, one step of the learning-rate schedule.

On CUDA the backbone runs under autocast in channels_last memory format (config ``amp``, ``amp_dtype``
bfloat16 or float16, ``channels_last``); the head and the losses run in float32. With float16 the loss
is scaled by a ``torch.amp.GradScaler`` (gradients unscaled before the norm clip; a step whose gradients
overflow is skipped, as the scaler does), whose state is part of the checkpoint. ``compile = true`` compiles the backbone with
``torch.compile`` (in place: state_dict keys do not change).

Processes: launched with ``torchrun`` (env ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), :func:`train`
initialises ``torch.distributed`` through :mod:`frmask.distributed` (nccl on CUDA, gloo on the CPU)
unless the caller already did, and wraps the student in DistributedDataParallel. Only rank 0 writes files.

Checkpoints (:mod:`frmask.train.checkpoint`) are written every ``checkpoint_every`` steps, at the end, and
when SIGINT or SIGTERM arrives (the step under way completes, a checkpoint is written, :func:`train`
returns with ``interrupted=True``; a second SIGINT aborts at once). ``resume=True`` continues from the
run's latest checkpoint exactly (model, head, optimiser, schedule, RNG states, data position) and refuses a
configuration that differs in anything but :data:`frmask.train.config.RUNTIME_KEYS`.

Run folder: ``config.toml``, ``checkpoints/step_NNNNNNNN.pt``, ``log.csv``, ``eval.csv``, ``losses.png``
(Figure 3 of the paper), ``tensorboard/`` (when tensorboard is installed).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from frmask import distributed
from frmask.train.config import TrainConfig, config_diff

__all__ = ["Trainer", "TrainResult", "NonFiniteLoss", "train", "margin_generator", "resolve_device"]

_MARGIN_STREAM = 0x6D617267  # "marg"


def margin_generator(seed: int, step: int):
    """The CPU torch.Generator of step ``step``'s margins: seeded from numpy's SeedSequence((seed, step, tag))."""
    import torch

    state = np.random.SeedSequence([int(seed), int(step), _MARGIN_STREAM]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def resolve_device(device: str, local_rank: int = 0, world_size: int = 1):
    """``"cpu"``, ``"cuda"`` (``cuda:LOCAL_RANK`` under DDP) or ``"cuda:N"``; ValueError when unusable."""
    import torch

    text = str(device)
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {text!r} was asked for but CUDA is not available to torch")
        if text == "cuda":
            return torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        return torch.device(text)
    raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")


class _Student:
    """Factory of the student module (a torch.nn.Module built lazily so that torch is imported late)."""

    @staticmethod
    def build(backbone, head):
        import torch
        from torch import nn

        class Student(nn.Module):
            """backbone (under the caller's autocast) -> embeddings; head in float32 -> logits."""

            def __init__(self):
                super().__init__()
                self.backbone = backbone
                self.head = head

            def forward(self, images, labels, margins):
                embeddings = self.backbone(images)
                with torch.autocast(images.device.type, enabled=False):
                    logits = self.head(embeddings.float(), labels, margins)
                return embeddings, logits

        return Student()


class Trainer:
    """Model, optimiser and schedules of one process, and :meth:`train_step` (see the module docstring).

    ``teacher`` is a callable on the clean images (:mod:`frmask.train.teacher`) or None (no KD term).
    ``process_group`` is used for the synchronised BatchNorm (``config.sync_bn``) when ``world_size`` > 1.
    """

    def __init__(self, config: TrainConfig, num_classes: int, *, teacher=None, device="cpu", rank: int = 0,
                 world_size: int = 1, process_group=None) -> None:
        import torch

        from frmask.train.backbones import get_backbone
        from frmask.train.distill import LambdaSchedule
        from frmask.train.heads import get_head

        self.config = config
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.amp_dtype = getattr(torch, config.amp_dtype)
        self.rank, self.world_size = rank, world_size
        if config.batch_size % world_size:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by the {world_size} processes")
        self.local_batch = config.batch_size // world_size

        backbone = get_backbone(config.backbone, embedding_size=config.embedding_size, dropout=config.dropout)
        head = get_head(config.head, embedding_size=config.embedding_size, num_classes=self.num_classes,
                        s=config.head_s, m=config.head_m, std=config.head_std)
        if config.sync_bn and world_size > 1:
            from frmask.train.syncbn import convert_sync_batchnorm

            backbone = convert_sync_batchnorm(backbone, self.device.type, process_group)
        self.backbone, self.head = backbone.to(self.device), head.to(self.device)
        self.set_precision(config.amp and self.cuda, config.channels_last and self.cuda)
        if config.compile:
            self.backbone.compile()
        self.student = _Student.build(backbone, head)
        self.model = self.student
        if world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(self.student, device_ids=[self.device.index] if self.cuda else None)
        self.teacher = teacher
        self.optimizer = torch.optim.SGD(
            [{"params": [p for p in backbone.parameters() if p.requires_grad]},
             {"params": [p for p in head.parameters() if p.requires_grad]}],
            lr=config.scaled_lr, momentum=config.momentum, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, config.milestone_steps(),
                                                              gamma=config.lr_gamma)
        self.lambda_schedule = LambdaSchedule(config.kd_lambda, config.kd_lambda_high or None,
                                              config.kd_switch_at, config.steps)

    def set_precision(self, amp: bool, channels_last: bool) -> None:
        """Autocast to ``config.amp_dtype`` (float16 with a GradScaler) and channels_last weights and inputs.

        The constructor applies the config's settings on CUDA and float32 elsewhere; calling this before
        the first step applies them on any device (the tests run the CUDA code path on the CPU this way).
        It starts a new GradScaler: call it before :meth:`load_state_dict`, never after.
        """
        import torch

        self.amp, self.channels_last = bool(amp), bool(channels_last)
        self.backbone.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp and self.amp_dtype == torch.float16)

    # ---------------------------------------------------------------------------------------- step

    def margins(self, step: int):
        """This process's slice of the global batch's margins of step ``step`` (on the training device)."""
        full = self.head.sample_margins(self.config.batch_size, generator=margin_generator(self.config.seed, step))
        lo = self.rank * self.local_batch
        return full[lo:lo + self.local_batch].to(self.device, non_blocking=True)

    def _images(self, x):
        import torch

        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_step(self, step: int, batch: dict) -> dict[str, Any]:
        """One optimisation step on ``batch`` (dict with ``student``, ``teacher``, ``label``).

        Returns detached device tensors ``ce`` and ``kd`` (None when no teacher ran) and ``bad_grad``
        (whether the backbone's gradient norm was not finite; None when not clipped or when the float16
        scaler handles overflows), and the floats ``lambda`` and ``lr`` used. Nothing here synchronises
        with the GPU.
        """
        import torch
        import torch.nn.functional as F

        from frmask.train.distill import kd_loss

        student_x = self._images(batch["student"])
        labels = batch["label"].to(self.device, non_blocking=True).long()
        if len(labels) != self.local_batch:
            raise ValueError(f"batch of {len(labels)} samples; this process expects {self.local_batch}")
        lam = float(self.lambda_schedule(step))
        lr = float(self.optimizer.param_groups[0]["lr"])
        margins = self.margins(step)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            embeddings, logits = self.model(student_x, labels, margins)
        ce = F.cross_entropy(logits.float(), labels)
        kd = None
        loss = ce
        if self.teacher is not None and lam > 0:
            target = self.teacher(self._images(batch["teacher"]))
            kd = kd_loss(embeddings, target)
            loss = ce + lam * kd
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()  # the scaler passes everything through unless float16
        bad_grad = None
        if self.config.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.backbone.parameters(), self.config.clip_grad_norm)
            if not self.scaler.is_enabled():  # (with the scaler, an overflow only skips the step)
                bad_grad = ~torch.isfinite(norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scaler.is_enabled():  # a step the scaler skipped (overflow) makes the scheduler warn; expected
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
                self.scheduler.step()
        else:
            self.scheduler.step()
        return {"ce": ce.detach(), "kd": None if kd is None else kd.detach(), "lambda": lam, "lr": lr,
                "bad_grad": bad_grad}

    # ---------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {"backbone": self.backbone.state_dict(), "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "lambda": self.lambda_schedule.to_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.backbone.load_state_dict(state["backbone"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if state.get("lambda") != self.lambda_schedule.to_dict():
            raise ValueError(f"checkpoint lambda schedule {state.get('lambda')} differs from the config's "
                             f"{self.lambda_schedule.to_dict()}")


# ------------------------------------------------------------------------------------------- driver


@dataclass
class TrainResult:
    """What :func:`train` did: the run folder, steps completed, whether a signal stopped it, the last
    checkpoint, the logs, the last evaluation's metrics and the mean throughput (global images/s)."""

    run: Path
    step: int
    steps: int
    interrupted: bool
    checkpoint: Path | None
    log: Path
    plot: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    images_per_s: float = math.nan


class NonFiniteLoss(ValueError):
    """The loss or the gradients became NaN or infinite (checked at every log step and before every
    checkpoint, so that no checkpoint holds weights they reached)."""


def _check_finite(values: list[float], done: int, steps: int, out: Path, trainer: Trainer) -> None:
    """Raise :class:`NonFiniteLoss` unless the summed CE and KD of the last ``steps`` steps are finite and
    none of them had a non-finite gradient norm (``values``: the running sums of :func:`_run`)."""
    ce, kd, bad_grads = values[0], values[1], values[3]
    finite_loss = math.isfinite(ce) and math.isfinite(kd)
    if finite_loss and bad_grads == 0:
        return
    what = (f"the training loss was not finite (CE sum {ce}, KD sum {kd})" if not finite_loss
            else f"the gradient norm was not finite in {bad_grads:g} of them")
    if not trainer.amp:
        hint = ""
    elif trainer.scaler.is_enabled():
        hint = ', use amp_dtype = "bfloat16" instead of float16'
    else:
        hint = ", train without autocast (amp = false)"
    from frmask.train.checkpoint import list_checkpoints

    kept = (f"earlier checkpoints in {out} are intact" if list_checkpoints(out)
            else f"no checkpoint yet, so nothing of the run is kept in {out}")
    raise NonFiniteLoss(f"step {done}: over the last {steps} steps {what}; stopped without checkpointing it "
                        f"({kept}). Lower the learning rate{hint}, or check that the teacher's embeddings are "
                        f"finite")


def _mean_over_processes(sums, world: int) -> list[float]:
    """The running sums of :func:`_run`, averaged over the ``world`` processes (all of them must call)."""
    return distributed.all_mean(sums).tolist()


class _Stop:
    """SIGINT/SIGTERM -> a flag read between steps; a second SIGINT raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "_Stop":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader worker init: leave Ctrl-C to the main process, which checkpoints and stops the workers
    (a worker that died of SIGINT would make the next batch fail instead)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _mask_augment(config: TrainConfig):
    if not config.mask:
        return None
    from frmask.train.data import MaskAugment

    return MaskAugment(prob=config.mask_prob, mask_types=config.mask_types, colors=config.mask_colors,
                       jitter=config.mask_jitter, template=config.mask_template or None)


def _init_weights(config: TrainConfig) -> dict | None:
    """The backbone state dict of ``config.init`` (run folder, checkpoint or backbone .pth), or None."""
    if not config.init:
        return None
    from frmask.train.teacher import load_torch_backbone

    try:
        return load_torch_backbone(config.init)[0].state_dict()
    except (ValueError, OSError, KeyError) as exc:
        raise ValueError(f"init: {exc}") from None


def _initialise(backbone, state: dict, config: TrainConfig) -> None:
    """Load the ``init`` weights into the student backbone, strictly (every key and shape must fit)."""
    from frmask.train.backbones import load_backbone_weights

    try:
        load_backbone_weights(backbone, state)
    except ValueError as exc:
        raise ValueError(f"init {config.init} cannot initialise the student {config.backbone} "
                         f"({config.embedding_size}-d): {exc}") from None


def _check_resume(ckpt: dict, config: TrainConfig, data_info: dict) -> None:
    """Refuse to resume with a different configuration (runtime keys and ``init``, which only matters at
    the start, aside; keys a checkpoint of an older frmask lacks count as their defaults) or data."""
    from frmask.train.config import RUNTIME_KEYS

    old = {**TrainConfig().to_dict(), **ckpt["config"]}
    diff = config_diff(old, config.to_dict(), ignore=RUNTIME_KEYS | {"init"})
    if diff:
        now = config.to_dict()
        parts = [f"{k} (run: {old.get(k, '<missing>')!r}, now: {now.get(k, '<missing>')!r})" for k in diff]
        raise ValueError(f"--resume: {ckpt['path']} was trained with a different configuration: "
                         f"{'; '.join(parts)}")
    if ckpt.get("data") != data_info:
        raise ValueError(f"--resume: {ckpt['path']} was trained on different data: {ckpt.get('data')} "
                         f"(now {data_info})")


def train(config: TrainConfig, data, out, *, teacher=None, resume: bool = False, device: str = "cpu",
          progress: bool = True, evaluators: list[Callable] | None = None,
          on_step: Callable[[int, Trainer], None] | None = None) -> TrainResult:
    """Train ``config`` on the dataset ``data`` (RecordIO or identity folder) into the run folder ``out``.

    ``teacher``: a path (run folder, checkpoint, backbone ``.pth`` or ``.onnx``; stored in the config as
    an absolute path), a teacher object (a callable with ``embedding_size``), or None (``config.teacher``).
    Needed exactly when the config's lambda can be > 0; given otherwise, it is ignored with a warning.
    ``config.init`` (a run folder, checkpoint or backbone ``.pth``, stored as an absolute path) initialises
    the student backbone at the start of a new run (as the authors' ``--pretrained_student``); the head
    starts fresh, since its classes are those of this run's data. A resumed run keeps its own ``init``.
    ``evaluators``: callables ``(embed_fn) -> dict`` run every ``eval_every`` steps and at the end on rank
    0 (default: a :class:`frmask.train.evaluate.BinEvaluator` per ``config.eval_bins`` entry).
    ``on_step(steps_done, trainer)`` is called after every step (tests, custom hooks).
    """
    import torch

    from frmask._atomic import write_text_atomic
    from frmask.train.checkpoint import (latest_checkpoint, load_checkpoint, rng_state, save_checkpoint,
                                         set_rng_state)
    from frmask.train.data import TrainSampler, open_dataset
    from frmask.train.masks import BatchAugment, resolve_augment
    from frmask.train.logs import RunLogger, plot_losses
    from frmask.train.run_folder import NewRun

    out = Path(out)
    if config.init:
        config = config.replace(init=str(Path(config.init).expanduser().resolve()))
    teacher_obj = None
    if isinstance(teacher, (str, os.PathLike)):
        if config.uses_teacher:
            config = config.replace(teacher=str(Path(teacher).expanduser().resolve()))
    elif teacher is not None:
        teacher_obj = teacher
    if teacher is not None and not config.uses_teacher:
        warnings.warn(f"variant {config.variant!r} has lambda 0: the teacher is not used", stacklevel=2)
        teacher_obj = None
    if config.uses_teacher and teacher_obj is None and not config.teacher:
        raise ValueError(f"variant {config.variant!r} distils (lambda {config.kd_lambda:g}"
                         f"{f' -> {config.kd_lambda_high:g}' if config.kd_lambda_high else ''}) and needs a "
                         f"teacher: pass --teacher (a run folder, checkpoint, backbone .pth or .onnx model)")

    where = distributed.env()
    rank, world = where.rank, where.world
    dev = resolve_device(device, where.local_rank, world)
    session = distributed.start(dev)  # the default group (nccl on CUDA, gloo) and the gloo control group
    ctrl = session.ctrl
    bn_group = session.side_group() if dev.type != "cuda" else None
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    fresh = NewRun(out, active=rank == 0 and not resume)  # an error before the first checkpoint leaves nothing
    try:
        init_state = None if resume else _init_weights(config)  # before the data: bad weights fail fast
        augment = resolve_augment(config.augment_device, dev)
        dataset = open_dataset(data, mask=_mask_augment(config), seed=config.seed, align=config.align, augment=augment)
        data_info = {"name": dataset.name, "images": len(dataset), "num_classes": int(dataset.num_classes)}
        if len(dataset) < config.batch_size:  # before any model is built or file written
            raise ValueError(f"{data}: {len(dataset)} images, fewer than one global batch of {config.batch_size}: "
                             f"use a smaller --batch-size, or --scale small for a CPU-sized run")
        ckpt = None
        if resume:
            path = latest_checkpoint(out)
            if path is None:
                raise ValueError(f"--resume: {out} holds no checkpoint to resume from")
            ckpt = load_checkpoint(path)
            _check_resume(ckpt, config, data_info)
            config = config.replace(init=ckpt["config"].get("init", ""))
        elif latest_checkpoint(out) is not None:
            raise ValueError(f"{out} already holds checkpoints of a run; pass --resume to continue it or choose "
                             f"another output folder")

        if config.uses_teacher and teacher_obj is None:
            from frmask.train.teacher import load_teacher

            teacher_obj = load_teacher(config.teacher, device=dev, amp=config.amp, amp_dtype=config.amp_dtype,
                                       channels_last=config.channels_last,
                                       channels=config.teacher_channels, normalization=config.teacher_normalization)
        if teacher_obj is not None and int(teacher_obj.embedding_size) != config.embedding_size:
            raise ValueError(f"the teacher {teacher_obj!r} gives {teacher_obj.embedding_size}-d embeddings but the "
                             f"student {config.embedding_size}-d; the KD loss compares them directly: set "
                             f"embedding_size = {teacher_obj.embedding_size} or use a "
                             f"{config.embedding_size}-d teacher")

        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        trainer = Trainer(config, dataset.num_classes, teacher=teacher_obj, device=dev, rank=rank,
                          world_size=world, process_group=bn_group)
        start = 0
        if init_state is not None:
            _initialise(trainer.backbone, init_state, config)
        if ckpt is not None:
            trainer.load_state_dict(ckpt)
            start = int(ckpt["step"])
            states = ckpt.get("rng") or []
            if len(states) == world:
                set_rng_state(states[rank])
            else:
                torch.manual_seed(config.seed + 7919 * (rank + 1) + start)
        else:
            torch.manual_seed(config.seed + 7919 * rank)
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out / "config.toml", config.to_toml())

        sampler = TrainSampler(len(dataset), config.batch_size, seed=config.seed, rank=rank, world_size=world,
                               start_step=start)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=trainer.local_batch, sampler=sampler, num_workers=config.workers,
            pin_memory=dev.type == "cuda", prefetch_factor=4 if config.workers else None,
            worker_init_fn=_ignore_sigint if config.workers else None,
            generator=torch.Generator().manual_seed(config.seed))
        if augment == "batch":  # the masks of each batch are drawn on the device
            loader = BatchAugment(dataset.mask, dev).batches(loader)
        if evaluators is None:
            from frmask.train.evaluate import config_evaluators

            evaluators = config_evaluators(config)
        logger = RunLogger(out, start_step=start, active=rank == 0, tensorboard=config.tensorboard)
        try:
            result = _run(trainer, loader, logger, evaluators, on_step, start, out, dataset, data_info, ctrl,
                          progress and rank == 0, rng_state, save_checkpoint,
                          carried=ckpt.get("log_interval") if ckpt is not None else None)
        finally:
            logger.close()
        if rank == 0 and result.step > 0 and (out / "log.csv").is_file():
            result.plot = plot_losses(out / "log.csv", out / "losses.png",
                                      title=f"{config.variant}: {config.backbone}, batch {config.batch_size}")
        return result
    except BaseException:
        fresh.discard()
        raise
    finally:
        session.close()


def _run(trainer: Trainer, loader, logger, evaluators, on_step, start: int, out: Path, dataset, data_info,
         ctrl, progress: bool, rng_state, save_checkpoint, carried: dict | None = None) -> TrainResult:
    """The steps ``start .. config.steps``. ``carried``: the checkpoint's ``log_interval`` (the running sums,
    step count and seconds of the log interval under way when it was saved), so that the first log row after
    a resume covers the same steps, with the same values, as the row of an uninterrupted run."""
    import torch
    import torch.distributed as dist
    from tqdm import tqdm

    from frmask.train.evaluate import make_embed_fn

    config = trainer.config
    world = trainer.world_size
    dev = trainer.device
    result = TrainResult(run=out, step=start, steps=config.steps, interrupted=False, checkpoint=None,
                         log=out / "log.csv")
    embed_fn = make_embed_fn(trainer.backbone, device=dev, batch_size=config.eval_batch_size,
                             flip=config.eval_flip, amp=trainer.amp, amp_dtype=config.amp_dtype,
                             channels_last=trainer.channels_last)
    sums = torch.zeros(4, dtype=torch.float64, device=dev)  # ce, kd, steps with kd, non-finite grad norms
    count = 0
    images_per_step = config.batch_size
    t_interval = t_start = time.perf_counter()
    if carried and carried.get("count"):  # the same on every process: the sums were averaged when saved
        sums += torch.tensor([float(v) for v in carried["sums"]], dtype=torch.float64, device=dev)
        count = int(carried["count"])
        t_interval -= float(carried.get("seconds", 0.0))
    bar = tqdm(total=config.steps, initial=start, disable=None if progress else True, unit="step", dynamic_ncols=True,
               desc=config.variant)
    iterator = iter(loader)
    try:
        with _Stop() as stop:
            for step in range(start, config.steps):
                batch = next(iterator)
                stats = trainer.train_step(step, batch)
                sums[0] += stats["ce"]
                if stats["kd"] is not None:
                    sums[1] += stats["kd"]
                    sums[2] += 1
                if stats["bad_grad"] is not None:
                    sums[3] += stats["bad_grad"]
                count += 1
                done = step + 1
                bar.update(1)
                last = done == config.steps
                if done % config.log_every == 0 or last:
                    values = _mean_over_processes(sums, world)
                    _check_finite(values, done, count, out, trainer)
                    ce, kd_sum, kd_n, _ = values
                    now = time.perf_counter()
                    rate = count * images_per_step / max(now - t_interval, 1e-9)
                    kd = kd_sum / kd_n if kd_n else None
                    logger.log(done, ce / count, kd, stats["lambda"], stats["lr"], rate)
                    line = (f"ce {ce / count:.3f}" + (f" kd {kd:.2e}" if kd is not None else "")
                            + f" {rate:.0f} img/s")
                    bar.set_postfix_str(line, refresh=False)
                    if bar.disable and progress and trainer.rank == 0:  # no terminal (a batch job): a log line
                        print(f"{config.variant} step {done}/{config.steps}: {line}, lr {stats['lr']:.3g}",
                              file=sys.stderr, flush=True)
                    sums.zero_()
                    count, t_interval = 0, now
                if on_step is not None:
                    on_step(done, trainer)
                stopping = stop.signum is not None
                if world > 1:
                    flag = torch.tensor([1 if stopping else 0])
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=ctrl)
                    stopping = bool(flag.item())
                if stopping or last or done % config.checkpoint_every == 0:
                    pending = [0.0] * 4
                    if count:  # steps since the last log step: no checkpoint of weights a NaN has reached
                        pending = _mean_over_processes(sums, world)
                        _check_finite(pending, done, count, out, trainer)
                    interval = {"sums": pending, "count": count, "seconds": time.perf_counter() - t_interval}
                    states = [rng_state()]
                    if world > 1:
                        states = [None] * world
                        dist.all_gather_object(states, rng_state(), group=ctrl)
                    if trainer.rank == 0:
                        result.checkpoint = save_checkpoint(
                            out, done, {"config": config.to_dict(), "num_classes": trainer.num_classes,
                                        "data": data_info, "world_size": world, "rng": states,
                                        "log_interval": interval, **trainer.state_dict()},
                            keep=config.keep_checkpoints)
                result.step = done
                if evaluators and (last or (config.eval_every and done % config.eval_every == 0)):
                    if trainer.rank == 0:
                        metrics: dict[str, float] = {}
                        for evaluator in evaluators:
                            metrics.update(evaluator(embed_fn))
                        logger.log_eval(done, metrics)
                        result.metrics = metrics
                        bar.write(f"step {done}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                    if world > 1:
                        dist.barrier(group=ctrl)
                if stopping:
                    result.interrupted = True
                    bar.write(f"stopped by signal at step {done}; checkpoint written; continue with --resume")
                    break
    finally:
        bar.close()
        del iterator
    elapsed = time.perf_counter() - t_start
    if result.step > start:
        result.images_per_s = (result.step - start) * images_per_step / elapsed
    return result
