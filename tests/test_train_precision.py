"""The trainer's GPU settings: bf16/fp16 autocast and channels_last (and, on CUDA, compile and a whole run).

Every test runs on CUDA when torch sees a GPU and is skipped there otherwise. The step and embedding tests
also run on the CPU as a stand-in: the CPU trainer normally trains in float32 (``amp``/``channels_last``
apply to CUDA only), so the stand-in switches them on with :meth:`Trainer.set_precision` and the code
path under test (autocast around the student, float32 head and losses, KD on low-precision embeddings,
the float16 GradScaler, channels_last inputs and weights, a low-precision teacher) runs on every machine.
The reference is always the float32, contiguous CPU step from the same initial weights.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from frmask.train.backbones import get_backbone  # noqa: E402
from frmask.train.config import load_config  # noqa: E402
from frmask.train.loop import Trainer  # noqa: E402
from frmask.train.teacher import TorchTeacher  # noqa: E402

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device visible to torch")
TARGETS = [pytest.param("cpu", id="cpu-standin"), pytest.param("cuda", id="cuda", marks=needs_cuda)]
DTYPES = ["bfloat16", "float16"]
CLASSES = 10


pytestmark = pytest.mark.usefixtures("two_torch_threads")


def _config(**changes):
    return load_config("lg", "small", {"tensorboard": False, "log_every": 1, "batch_size": 4, "lr_batch": 4,
                                       **changes})


def _settle(net):
    """Estimate the BatchNorm running statistics (a few train-mode passes): an untrained network's eval-mode
    activations otherwise grow stage by stage and overflow float16, which no trained model does."""
    net.train()
    with torch.no_grad():
        for seed in range(3):
            net(_batch(seed)["student"])
    return net.eval()


def _teacher_weights() -> dict:
    torch.manual_seed(11)
    return _settle(get_backbone("iresnet18")).state_dict()


def _trainer(config, device: str, low_precision: bool) -> Trainer:
    """A trainer (seeded: identical initial weights on every device) with its teacher."""
    teacher_net = get_backbone("iresnet18")
    teacher_net.load_state_dict(_teacher_weights())
    teacher = TorchTeacher(teacher_net, device=device, amp=low_precision, channels_last=low_precision,
                           amp_dtype=config.amp_dtype)
    torch.manual_seed(3)
    trainer = Trainer(config, CLASSES, teacher=teacher, device=device)
    if low_precision and device == "cpu":  # the CPU stand-in of the CUDA settings
        trainer.set_precision(True, True)
        teacher.amp = teacher.channels_last = True
        teacher.model.to(memory_format=torch.channels_last)
    return trainer


def _batch(seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    student = (torch.randint(0, 256, (4, 3, 112, 112), generator=gen).float() - 127.5) / 127.5
    return {"student": student, "teacher": student.flip(3), "label": torch.randint(0, CLASSES, (4,), generator=gen)}


def _flat(module) -> torch.Tensor:
    return torch.cat([p.detach().float().cpu().reshape(-1) for p in module.parameters()])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_low_precision_channels_last_step_agrees_with_float32(target, dtype):
    config = _config(amp=True, channels_last=True, amp_dtype=dtype)
    reference = _trainer(_config(amp=False, channels_last=False), "cpu", low_precision=False)
    candidate = _trainer(config, target, low_precision=True)
    if dtype == "float16":  # start at a scale whose gradients fit float16, so that no step is skipped (the
        candidate.scaler = torch.amp.GradScaler(target, init_scale=256.0)  # default 2**16 overflows at first)
    assert candidate.amp and candidate.channels_last and not reference.amp
    assert candidate.scaler.is_enabled() == (dtype == "float16") and not reference.scaler.is_enabled()
    start = _flat(reference.backbone)
    assert torch.equal(start, _flat(candidate.backbone))  # same initial weights on both devices

    seen = {}
    hooks = [candidate.backbone.register_forward_hook(lambda m, i, o: seen.__setitem__("embedding", o.dtype)),
             candidate.head.register_forward_hook(lambda m, i, o: seen.__setitem__("logits", o.dtype))]
    ref_stats, cand_stats = [], []
    for step in range(1):
        batch = _batch(step)
        ref_stats.append(reference.train_step(step, batch))
        cand_stats.append(candidate.train_step(step, batch))
    for hook in hooks:
        hook.remove()

    assert seen == {"embedding": getattr(torch, dtype), "logits": torch.float32}  # autocast on; head float32
    conv = candidate.backbone.conv1.weight
    assert conv.dtype == torch.float32 and conv.is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype == torch.float32 for p in candidate.head.parameters())
    for ref, cand in zip(ref_stats, cand_stats):
        assert cand["ce"].dtype == torch.float32 and cand["kd"].dtype == torch.float32
        assert cand["lambda"] == ref["lambda"] == 100.0 and cand["lr"] == ref["lr"]
        assert abs(float(cand["ce"]) - float(ref["ce"])) <= 0.01 * float(ref["ce"])
        assert abs(float(cand["kd"]) - float(ref["kd"])) <= 0.02 * float(ref["kd"])
    # the SGD update points the same way as the float32 one
    ref_update = _flat(reference.backbone) - start
    cand_update = _flat(candidate.backbone) - start
    cosine = float(torch.nn.functional.cosine_similarity(ref_update, cand_update, dim=0))
    assert cosine > 0.99, cosine
    ratio = float(cand_update.norm() / ref_update.norm())
    assert 0.97 < ratio < 1.03, ratio
    if dtype == "float16":  # the scaler took the step (no overflow) and its state is checkpointed
        assert candidate.scaler.get_scale() == 256.0
        assert candidate.state_dict()["scaler"]["scale"] == 256.0


@pytest.mark.parametrize("target", TARGETS)
def test_float16_step_that_overflows_is_skipped(target):
    """The GradScaler's default scale (2**16) makes the first gradients overflow float16 (the head's s = 64):
    the step changes no weight, halves the scale, and the learning-rate schedule still advances, silently."""
    import warnings

    trainer = _trainer(_config(amp=True, channels_last=True, amp_dtype="float16"), target, low_precision=True)
    before = torch.cat([_flat(trainer.backbone), _flat(trainer.head)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = trainer.train_step(0, _batch(0))
    assert torch.isfinite(stats["ce"]) and torch.isfinite(stats["kd"])  # the forward pass was fine
    assert torch.equal(before, torch.cat([_flat(trainer.backbone), _flat(trainer.head)]))
    assert trainer.scaler.get_scale() == 32768.0 and trainer.scheduler.last_epoch == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_eval_embeddings_under_autocast_agree_with_float32(target, dtype):
    from frmask.train.evaluate import make_embed_fn

    torch.manual_seed(0)
    net = _settle(get_backbone("iresnet18"))
    images = np.random.default_rng(0).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    reference = make_embed_fn(net, device="cpu", batch_size=4, amp=False)(images)
    low = net.to(target).to(memory_format=torch.channels_last)
    got = make_embed_fn(low, device=target, batch_size=4, amp=True, amp_dtype=dtype, channels_last=True)(images)
    assert got.dtype == np.float32 and got.shape == reference.shape
    cosines = (got * reference).sum(axis=1)  # both L2-normalised
    assert cosines.min() > 0.99, cosines


@needs_cuda
def test_cuda_compiled_run_and_export(tmp_path):
    """A whole run on the GPU: hg with a teacher, bf16, channels_last, torch.compile; then export to ONNX."""
    from forged_images import random_identity_folders

    from frmask.train.checkpoint import load_checkpoint
    from frmask.train.export import export_onnx
    from frmask.train.loop import train

    data = tmp_path / "faces"
    random_identity_folders(data, 4, 4, seed=0)
    teacher_net = get_backbone("iresnet18")
    teacher_net.load_state_dict(_teacher_weights())
    teacher = TorchTeacher(teacher_net, device="cuda", amp=True, channels_last=True)
    config = load_config("hg", "small", {"steps": 6, "batch_size": 8, "amp": True, "channels_last": True,
                                         "compile": True, "checkpoint_every": 3, "tensorboard": False,
                                         "align": "none", "workers": 2})
    result = train(config, data, tmp_path / "run", teacher=teacher, device="cuda", progress=False)
    assert result.step == 6 and not result.interrupted and result.checkpoint is not None
    state = load_checkpoint(result.checkpoint)["backbone"]
    assert not any("_orig_mod" in key for key in state)  # compile did not rename the weights
    out = export_onnx(tmp_path / "run", tmp_path / "student.onnx")
    assert out.path.is_file() and out.embedding_size == 512
