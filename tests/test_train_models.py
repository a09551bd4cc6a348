"""Backbones, margin heads and the distillation loss/schedule of frmask.train against independent oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from frmask.train.backbones import (
    BACKBONES,
    LAYERS,
    get_backbone,
    load_backbone_weights,
)
from frmask.train.distill import LambdaSchedule, kd_loss
from frmask.train.heads import HEADS, get_head, plus_order

# ------------------------------------------------------------------------------------------ backbones

# A few keys and shapes of insightface arcface_torch / ElasticFace iresnet state_dicts (512-d, 112x112).
R18_KEYS = {
    "conv1.weight": (64, 3, 3, 3),
    "bn1.running_var": (64,),
    "prelu.weight": (64,),
    "layer1.0.bn1.weight": (64,),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.0.prelu.weight": (64,),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.bn3.bias": (64,),
    "layer1.0.downsample.0.weight": (64, 64, 1, 1),
    "layer1.0.downsample.1.running_mean": (64,),
    "layer2.0.bn1.weight": (64,),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.1.conv2.weight": (128, 128, 3, 3),
    "layer4.1.bn3.num_batches_tracked": (),
    "bn2.weight": (512,),
    "fc.weight": (512, 25088),
    "fc.bias": (512,),
    "features.weight": (512,),
    "features.running_var": (512,),
}
R50_EXTRA = {"layer3.13.conv2.weight": (256, 256, 3, 3), "layer2.3.prelu.weight": (128,)}
R50_ABSENT = ("layer3.14.bn1.weight", "layer1.1.downsample.0.weight", "layer1.3.bn1.weight")
# state_dict entries: 6 stem + 18 per block + 6 per stage (downsample) + 5 bn2 + 2 fc + 5 features.
N_KEYS = {"iresnet18": 187, "iresnet50": 475}


def param_count_formula(layers, emb=512, side=7):
    """Trainable-or-frozen parameter count of an iResNet from its layout (no buffers)."""
    total = 3 * 64 * 9 + 2 * 64 + 64  # stem conv, bn, prelu
    cin = 64
    for width, blocks in zip((64, 128, 256, 512), layers):
        for b in range(blocks):
            i = cin if b == 0 else width
            total += 2 * i + i * width * 9 + 2 * width + width + width * width * 9 + 2 * width
            if b == 0:
                total += i * width + 2 * width  # downsample conv + bn
        cin = width
    return total + 2 * 512 + 512 * side * side * emb + emb + 2 * emb


@pytest.fixture(scope="module")
def r18():
    return get_backbone("iresnet18")


@pytest.fixture(scope="module")
def r50():
    return get_backbone("r50")


def test_registry_and_aliases():
    assert set(BACKBONES) == {"iresnet18", "iresnet34", "iresnet50", "iresnet100", "iresnet200"}
    assert LAYERS["iresnet200"] == (6, 26, 60, 6) and LAYERS["iresnet100"] == (3, 13, 30, 3)
    with pytest.raises(ValueError, match="iresnet50.*r100"):
        get_backbone("resnet50")
    with pytest.raises(ValueError, match="multiple of 16"):
        get_backbone("r18", input_size=100)


def test_iresnet18_keys_and_shapes(r18):
    sd = r18.state_dict()
    assert len(sd) == N_KEYS["iresnet18"]
    for key, shape in R18_KEYS.items():
        assert tuple(sd[key].shape) == shape, key
    assert "layer4.2.bn1.weight" not in sd and "layer1.1.downsample.0.weight" not in sd
    assert not r18.features.weight.requires_grad and r18.features.bias.requires_grad
    assert torch.all(r18.features.weight == 1)


def test_iresnet50_keys_and_shapes(r50):
    sd = r50.state_dict()
    assert len(sd) == N_KEYS["iresnet50"]
    for key, shape in {**R18_KEYS, **R50_EXTRA}.items():
        assert tuple(sd[key].shape) == shape, key
    for key in R50_ABSENT:
        assert key not in sd


def test_parameter_counts(r18, r50):
    # Published: iResNet-50 43.6M, iResNet-100 65.2M parameters (ElasticFace / insightface model zoo; ONNX files
    # of 167 MB and 249 MB = MiB of float32 weights incl. BN statistics).
    n50 = sum(p.numel() for p in r50.parameters())
    assert n50 == param_count_formula(LAYERS["iresnet50"]) == 43_590_848
    assert round(n50 / 1e6, 1) == 43.6
    assert sum(p.numel() for p in r18.parameters()) == param_count_formula(LAYERS["iresnet18"])
    r100 = get_backbone("r100")  # built once, never run
    n100 = sum(p.numel() for p in r100.parameters())
    assert n100 == param_count_formula(LAYERS["iresnet100"]) == 65_156_160
    assert round(n100 / 1e6, 1) == 65.2
    assert round(sum(v.numel() for v in r100.state_dict().values()) * 4 / 2**20) == 249
    assert round(sum(v.numel() for v in r50.state_dict().values()) * 4 / 2**20) == 166  # ~167 MB file


def test_embedding_size_and_input_size():
    m = get_backbone("r18", embedding_size=128, input_size=128)
    assert tuple(m.fc.weight.shape) == (128, 512 * 8 * 8) and tuple(m.features.weight.shape) == (128,)


def test_forward_shape_and_channels_last(r18):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 112, 112)
    r18.train()
    with torch.no_grad():
        y = r18(x)
        assert y.shape == (2, 512) and y.dtype == torch.float32 and torch.isfinite(y).all()
        m_cl = get_backbone("r18")
        m_cl.load_state_dict(r18.state_dict())
        m_cl = m_cl.to(memory_format=torch.channels_last).train()
        y_cl = m_cl(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(y_cl, y, rtol=1e-3, atol=1e-3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y_bf = r18(x)
        assert y_bf.shape == (2, 512) and torch.isfinite(y_bf.float()).all()
        cos = torch.nn.functional.cosine_similarity(y_bf.float(), y).min()
        assert cos > 0.98
    with pytest.raises(ValueError, match="112"):
        r18(torch.zeros(1, 3, 96, 112))


def test_forward_shape_r50(r50):
    r50.eval()
    with torch.no_grad():
        assert r50(torch.zeros(2, 3, 112, 112)).shape == (2, 512)


def _perturbed_state(model):
    g = torch.Generator().manual_seed(1)
    return {k: (v + torch.rand(v.shape, generator=g) if v.is_floating_point() else v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("prefix", ["", "module.", "backbone.", "module.backbone."])
@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_load_round_trip_prefixes(r18, prefix, wrap):
    src = _perturbed_state(r18)
    obj = {prefix + k: v for k, v in src.items()}
    if wrap:
        obj = {wrap: obj, "epoch": 3}
    dst = get_backbone("r18")
    load_backbone_weights(dst, obj)
    for k, v in dst.state_dict().items():
        assert torch.equal(v, src[k]), k


def test_load_from_file_and_missing_batch_counters(r18, tmp_path):
    src = {k: v for k, v in _perturbed_state(r18).items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "backbone.pth"
    torch.save(src, path)
    dst = get_backbone("r18")
    load_backbone_weights(dst, path)
    assert torch.equal(dst.fc.weight, src["fc.weight"])
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        load_backbone_weights(dst, bad)
    with pytest.raises(ValueError, match="nothere.pth"):
        load_backbone_weights(dst, tmp_path / "nothere.pth")


def test_load_errors(r18):
    small = get_backbone("r18", embedding_size=128)
    before = r18.fc.weight.detach().clone()
    with pytest.raises(ValueError, match=r"fc\.weight \(128, 25088\) in source vs \(512, 25088\).*embedding size 128"):
        load_backbone_weights(r18, small.state_dict())
    assert torch.equal(r18.fc.weight, before)  # nothing loaded
    sd = dict(r18.state_dict())
    del sd["layer2.0.conv1.weight"]
    sd["head.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"missing keys: layer2\.0\.conv1\.weight.*unexpected keys: head\.weight"):
        load_backbone_weights(r18, sd)
    with pytest.raises(ValueError, match="no state_dict"):
        load_backbone_weights(r18, {"optimizer": {"lr": 0.1}})


# ------------------------------------------------------------------------------------------------ heads


def oracle_logits(emb, w, labels, margins, s, kind):
    """numpy: s * cos(theta_j), target s * cos(theta + m) (s * (cos - m - ... ) fallback) or s * (cos - m)."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    c = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = e @ c.T
    out = cos.copy()
    for i, (y, m) in enumerate(zip(labels, margins)):
        t = cos[i, y]
        if kind == "cosface":
            out[i, y] = t - m
        else:
            theta = math.acos(min(max(t, -1 + 1e-6), 1 - 1e-6))
            out[i, y] = math.cos(theta + m) if theta + m <= math.pi else t - m * math.sin(m)
    return s * out


@pytest.mark.parametrize("kind", ["elasticface-arc", "arcface", "cosface"])
def test_heads_match_numpy_oracle(kind):
    rng = np.random.default_rng(5)
    emb, labels = rng.normal(size=(6, 8)), np.array([0, 4, 2, 2, 1, 4])
    margins = np.array([0.5, 0.45, 0.62, 0.3, 0.55, 0.0])
    head = get_head(kind, embedding_size=8, num_classes=5, s=30.0).double()
    w = head.weight.detach().numpy()
    got = head(torch.from_numpy(emb), torch.from_numpy(labels), torch.from_numpy(margins)).detach().numpy()
    np.testing.assert_allclose(got, oracle_logits(emb, w, labels, margins, 30.0, kind), rtol=1e-10, atol=1e-9)


def test_elasticface_plus_forward_uses_rank_assignment():
    rng = np.random.default_rng(6)
    emb, labels = rng.normal(size=(5, 4)), np.array([0, 1, 2, 0, 1])
    pool = np.array([0.40, 0.55, 0.47, 0.60, 0.52])
    head = get_head("elasticface-arc+", embedding_size=4, num_classes=3).double()
    w = head.weight.detach().numpy()
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    target = (e @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T)[np.arange(5), labels]
    assigned = np.empty(5)
    assigned[np.argsort(-target)] = np.sort(pool)  # k-th largest cosine <- k-th smallest margin
    got = head(torch.from_numpy(emb), torch.from_numpy(labels), torch.from_numpy(pool)).detach().numpy()
    np.testing.assert_allclose(got, oracle_logits(emb, w, labels, assigned, 64.0, "arc"), rtol=1e-10, atol=1e-9)


def test_plus_sorting_rules_by_hand():
    cos = torch.tensor([0.1, 0.9, 0.5])
    pool = torch.tensor([0.6, 0.4, 0.5])
    # rank rule: 0.9 -> smallest 0.4, 0.5 -> 0.5, 0.1 -> largest 0.6
    assert plus_order(cos, pool).tolist() == pytest.approx([0.6, 0.4, 0.5])
    # authors' code: sorted pool [0.4, 0.5, 0.6] indexed by argsort_desc(cos) = [1, 2, 0]
    assert plus_order(cos, pool, "authors-code").tolist() == pytest.approx([0.5, 0.6, 0.4])
    g = torch.Generator().manual_seed(0)
    c, p = torch.rand(64, generator=g), torch.rand(64, generator=g)
    out = plus_order(c, p)
    assert torch.equal(torch.sort(out).values, torch.sort(p).values)  # a permutation of the pool
    order = torch.argsort(c)
    assert torch.all(torch.diff(out[order]) <= 0)  # larger cosine, smaller margin
    with pytest.raises(ValueError, match="plus_rule"):
        plus_order(c, p, "sorted")


def test_known_angles_arcface_cosface():
    # 2-d embeddings: class centres at 0, 60 and 120 degrees; the sample at 30 degrees, label 0.
    ang = np.deg2rad([0.0, 60.0, 120.0])
    w = torch.tensor(np.stack([np.cos(ang), np.sin(ang)], 1))
    x = torch.tensor([[math.cos(math.pi / 6), math.sin(math.pi / 6)]], dtype=torch.float64) * 3.0
    y = torch.tensor([0])
    for kind, target in (("arcface", math.cos(math.pi / 6 + 0.5)), ("cosface", math.cos(math.pi / 6) - 0.35)):
        head = get_head(kind, embedding_size=2, num_classes=3).double()
        with torch.no_grad():
            head.weight.copy_(w * 7.0)
        expect = 64.0 * np.array([target, math.cos(math.pi / 6), math.cos(math.pi / 2)])
        np.testing.assert_allclose(head(x, y).detach().numpy()[0], expect, atol=1e-9)
    # theta = 170 degrees: theta + m > pi, insightface fallback cos(theta) - m sin(m)
    head = get_head("arcface", embedding_size=2, num_classes=3).double()
    with torch.no_grad():
        head.weight.copy_(w)
    x170 = torch.tensor([[math.cos(math.radians(170)), math.sin(math.radians(170))]], dtype=torch.float64)
    got = head(x170, y)[0, 0].item() / 64.0
    assert got == pytest.approx(math.cos(math.radians(170)) - 0.5 * math.sin(0.5), abs=1e-9)


def test_arc_gradient_finite_at_the_centre():
    head = get_head("elasticface-arc", embedding_size=4, num_classes=3)
    x = head.weight.detach()[[1, 2]].clone().requires_grad_(True)  # exactly on the centres: cos = 1
    loss = torch.nn.functional.cross_entropy(head(x, torch.tensor([1, 2])), torch.tensor([1, 2]))
    loss.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


def test_elastic_margin_statistics_and_seeding():
    for kind, std in (("elasticface-arc", 0.05), ("elasticface-arc+", 0.0175)):
        head = get_head(kind, embedding_size=4, num_classes=3)
        m = head.sample_margins(200_000, torch.Generator().manual_seed(3))
        assert m.shape == (200_000,) and m.dtype == torch.float32
        assert abs(m.mean().item() - 0.5) < 5 * std / math.sqrt(200_000)
        assert abs(m.std().item() / std - 1) < 0.01
        again = head.sample_margins(200_000, torch.Generator().manual_seed(3))
        assert torch.equal(m, again)
    fixed = get_head("cosface", embedding_size=4, num_classes=3).sample_margins(5)
    assert fixed.tolist() == pytest.approx([0.35] * 5)
    head = get_head("elasticface-arc", embedding_size=4, num_classes=3)
    x, y = torch.randn(4, 4), torch.tensor([0, 1, 2, 0])
    torch.manual_seed(9)
    a = head(x, y)
    torch.manual_seed(9)
    assert torch.equal(a, head(x, y))  # margins come from the default RNG when none are passed


def test_head_defaults_errors_and_autocast():
    assert HEADS == ("elasticface-arc", "elasticface-arc+", "arcface", "cosface")
    assert (get_head("elasticface-arc+", embedding_size=4, num_classes=3).std) == 0.0175
    assert get_head("elasticface-arc", embedding_size=4, num_classes=3).std == 0.05
    assert get_head("cosface", embedding_size=4, num_classes=3).m == 0.35
    head = get_head("arcface", embedding_size=8, num_classes=10)
    assert tuple(head.weight.shape) == (10, 8)
    with pytest.raises(ValueError, match="unknown head"):
        get_head("sphereface", embedding_size=4, num_classes=3)
    with pytest.raises(ValueError, match="margins"):
        head(torch.randn(2, 8), torch.tensor([0, 1]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="embeddings"):
        head(torch.randn(2, 7), torch.tensor([0, 1]))
    x, y = torch.randn(3, 8), torch.tensor([1, 2, 9])
    ref = head(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = head(x, y)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, atol=64 * 0.02, rtol=0)


# ---------------------------------------------------------------------------------------------- distill


def test_kd_loss_oracle_and_teacher_gradient():
    rng = np.random.default_rng(2)
    s_np, t_np = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)) * 5
    expect = np.mean((s_np / np.linalg.norm(s_np, axis=1, keepdims=True) - t_np / np.linalg.norm(t_np, axis=1, keepdims=True)) ** 2)
    s = torch.tensor(s_np, requires_grad=True)
    t = torch.tensor(t_np, requires_grad=True)
    loss = kd_loss(s, t)
    assert loss.item() == pytest.approx(expect, rel=1e-12)
    loss.backward()
    assert t.grad is None and s.grad is not None and torch.isfinite(s.grad).all()
    assert torch.autograd.gradcheck(lambda a: kd_loss(a, t), (s.detach().clone().requires_grad_(True),))
    assert kd_loss(s, 3 * s).item() == pytest.approx(0.0, abs=1e-15)  # scale invariant
    assert kd_loss(torch.ones(2, 3, dtype=torch.bfloat16), torch.ones(2, 3)).dtype == torch.float32
    with pytest.raises(ValueError, match="equal shape"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_lambda_schedule_boundaries_and_serialisation():
    hg = LambdaSchedule.for_variant("hg", total_steps=295_000)
    assert hg.switch_step == 227_150
    assert hg(0) == 100.0 and hg(227_149) == 100.0 and hg(227_150) == 3000.0 and hg(294_999) == 3000.0
    assert "227150" in repr(hg)
    assert LambdaSchedule.from_dict(hg.to_dict()) == hg
    small = LambdaSchedule(100.0, 3000.0, 0.77, 10)  # round(7.7) = 8
    assert [small(i) for i in (7, 8)] == [100.0, 3000.0]
    lg = LambdaSchedule.for_variant("lg")
    assert lg(0) == lg(10**9) == 100.0 and lg.switch_step is None
    assert LambdaSchedule.for_variant("aug")(5) == 0.0 == LambdaSchedule.for_variant("elasticface")(5)
    assert LambdaSchedule.from_dict(lg.to_dict()) == lg
    with pytest.raises(ValueError, match="total_steps"):
        LambdaSchedule(100.0, 3000.0)
    with pytest.raises(ValueError, match="step"):
        hg(-1)
    with pytest.raises(ValueError, match="variant"):
        LambdaSchedule.for_variant("xx")
