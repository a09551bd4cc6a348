"""The trainer's GPU settings: bf16 autocast and channels_last (and, on CUDA, compile and a whole run).

Every test runs on CUDA when torch sees a GPU and is skipped there otherwise. The step test also runs on the
CPU as a stand-in: the CPU trainer normally trains in float32 (``amp``/``channels_last`` apply to CUDA
only), so the stand-in switches the same attributes on by hand and the code path under test (autocast
around the student, float32 head and losses, KD on bf16 embeddings, channels_last inputs and weights, a
bf16 teacher) is exercised on every machine. The reference is always the float32, contiguous CPU step
from the same initial weights.
"""

from __future__ import annotations

import os

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
CLASSES = 10


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
    torch.set_num_threads(old)


def _config(**changes):
    return load_config("lg", "small", {"tensorboard": False, "log_every": 1, "batch_size": 4, "lr_batch": 4,
                                       **changes})


def _teacher_weights() -> dict:
    torch.manual_seed(11)
    return get_backbone("iresnet18").state_dict()


def _trainer(config, device: str, low_precision: bool) -> Trainer:
    """A trainer (seeded: identical initial weights on every device) with its teacher."""
    teacher_net = get_backbone("iresnet18")
    teacher_net.load_state_dict(_teacher_weights())
    teacher = TorchTeacher(teacher_net, device=device, amp=low_precision, channels_last=low_precision)
    torch.manual_seed(3)
    trainer = Trainer(config, CLASSES, teacher=teacher, device=device)
    if low_precision and device == "cpu":  # the CPU stand-in of the CUDA settings
        trainer.amp = trainer.channels_last = True
        trainer.backbone.to(memory_format=torch.channels_last)
        teacher.amp = teacher.channels_last = True
        teacher.model.to(memory_format=torch.channels_last)
    return trainer


def _batch(seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    student = (torch.randint(0, 256, (4, 3, 112, 112), generator=gen).float() - 127.5) / 127.5
    return {"student": student, "teacher": student.flip(3), "label": torch.randint(0, CLASSES, (4,), generator=gen)}


def _flat(module) -> torch.Tensor:
    return torch.cat([p.detach().float().cpu().reshape(-1) for p in module.parameters()])


@pytest.mark.parametrize("target", TARGETS)
def test_bf16_channels_last_step_agrees_with_float32(target):
    config = _config(amp=True, channels_last=True)
    reference = _trainer(_config(amp=False, channels_last=False), "cpu", low_precision=False)
    candidate = _trainer(config, target, low_precision=True)
    assert candidate.amp and candidate.channels_last and not reference.amp
    start = _flat(reference.backbone)
    assert torch.equal(start, _flat(candidate.backbone))  # same initial weights on both devices

    seen = {}
    hooks = [candidate.backbone.register_forward_hook(lambda m, i, o: seen.__setitem__("embedding", o.dtype)),
             candidate.head.register_forward_hook(lambda m, i, o: seen.__setitem__("logits", o.dtype))]
    ref_stats, cand_stats = [], []
    for step in range(2):
        batch = _batch(step)
        ref_stats.append(reference.train_step(step, batch))
        cand_stats.append(candidate.train_step(step, batch))
    for hook in hooks:
        hook.remove()

    assert seen == {"embedding": torch.bfloat16, "logits": torch.float32}  # autocast on; head in float32
    conv = candidate.backbone.conv1.weight
    assert conv.dtype == torch.float32 and conv.is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype == torch.float32 for p in candidate.head.parameters())
    for ref, cand in zip(ref_stats, cand_stats):
        assert cand["ce"].dtype == torch.float32 and cand["kd"].dtype == torch.float32
        assert cand["lambda"] == ref["lambda"] == 100.0 and cand["lr"] == ref["lr"]
        assert abs(float(cand["ce"]) - float(ref["ce"])) <= 0.01 * float(ref["ce"])
        assert abs(float(cand["kd"]) - float(ref["kd"])) <= 0.02 * float(ref["kd"])
    # the two SGD updates point the same way as the float32 ones
    ref_update = _flat(reference.backbone) - start
    cand_update = _flat(candidate.backbone) - start
    cosine = float(torch.nn.functional.cosine_similarity(ref_update, cand_update, dim=0))
    assert cosine > 0.99, cosine
    ratio = float(cand_update.norm() / ref_update.norm())
    assert 0.97 < ratio < 1.03, ratio


@pytest.mark.parametrize("target", TARGETS)
def test_eval_embeddings_under_bf16_agree_with_float32(target):
    from frmask.train.evaluate import make_embed_fn

    torch.manual_seed(0)
    net = get_backbone("iresnet18")
    net.train()
    with torch.no_grad():  # settle the BatchNorm statistics so that eval-mode outputs are meaningful
        for seed in range(3):
            net(_batch(seed)["student"])
    images = np.random.default_rng(0).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    reference = make_embed_fn(net, device="cpu", batch_size=4, amp=False)(images)
    low = net.to(target).to(memory_format=torch.channels_last)
    embed = make_embed_fn(low, device=target, batch_size=4, amp=True, channels_last=True)
    if target == "cpu":  # make_embed_fn applies amp on CUDA only: the stand-in autocasts around it
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = embed(images)
    else:
        got = embed(images)
    assert got.dtype == np.float32 and got.shape == reference.shape
    cosines = (got * reference).sum(axis=1)  # both L2-normalised
    assert cosines.min() > 0.99, cosines


@needs_cuda
def test_cuda_run_with_compile_exports_and_scores(tmp_path):
    """A whole run on the GPU: hg with a teacher, bf16, channels_last, torch.compile; then export to ONNX."""
    import cv2

    from frmask.train.checkpoint import load_checkpoint
    from frmask.train.export import export_onnx
    from frmask.train.loop import train

    rng = np.random.default_rng(0)
    data = tmp_path / "faces"
    for identity in range(4):
        (data / f"id{identity}").mkdir(parents=True)
        for k in range(4):
            cv2.imwrite(str(data / f"id{identity}" / f"{k}.png"), rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))
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
