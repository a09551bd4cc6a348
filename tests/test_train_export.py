"""ONNX export of trained backbones (no data needed): names, dynamic batch, agreement with torch, errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from frmask.train.backbones import get_backbone  # noqa: E402
from frmask.train.checkpoint import save_checkpoint  # noqa: E402
from frmask.train.config import load_config  # noqa: E402
from frmask.train.export import export_onnx  # noqa: E402


def _settled_backbone(embedding_size: int = 512):
    """An iresnet18 whose BatchNorm running statistics have been estimated (a few train-mode passes)."""
    torch.manual_seed(0)
    model = get_backbone("r18", embedding_size=embedding_size)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.momentum = None  # cumulative averages: the statistics of exactly these passes
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, 112, 112) * 2 - 1)
    for bn in norms:
        bn.momentum = 0.1
    return model.eval()


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "backbone.pth"
    torch.save(_settled_backbone().state_dict(), path)
    return path


def test_export_bare_state_dict_matches_torch(backbone_file, tmp_path):
    out = tmp_path / "model.onnx"
    result = export_onnx(backbone_file, out)
    assert result.path == out and result.embedding_size == 512 and result.step is None
    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "input" and outp.name == "embedding" and inp.shape[1:] == [3, 112, 112]
    assert isinstance(inp.shape[0], str)  # dynamic batch
    model = get_backbone("r18")
    model.load_state_dict(torch.load(backbone_file))
    model.eval()
    rng = np.random.default_rng(5)
    for batch in (1, 5):
        pixels = rng.integers(0, 256, (batch, 112, 112, 3)).astype(np.float32)
        x = ((pixels - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()  # RGB, pm1, NCHW
        got = session.run(["embedding"], {"input": x})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, 512)
        assert np.abs(got - want).max() <= 1e-4


def test_export_run_folder_and_embedder_profile(tmp_path):
    from frmask.embed.onnx_model import OnnxEmbedder, detect_profile
    from frmask.train.loop import Trainer

    config = load_config("elasticface", "small", {"embedding_size": 128})
    trainer = Trainer(config, num_classes=4)
    trainer.backbone.load_state_dict(_settled_backbone(128).state_dict())
    run = tmp_path / "run"
    save_checkpoint(run, 7, {"config": config.to_dict(), **trainer.state_dict()})
    result = export_onnx(run, tmp_path / "m.onnx")
    assert result.step == 7 and result.embedding_size == 128 and result.max_abs_diff <= 1e-4
    profile = detect_profile(tmp_path / "m.onnx")
    assert (profile.layout, profile.channels, profile.normalization, profile.size) == ("NCHW", "RGB", "pm1",
                                                                                       (112, 112))
    images = np.random.default_rng(1).integers(0, 256, (3, 112, 112, 3)).astype(np.uint8)
    emb = OnnxEmbedder(tmp_path / "m.onnx").embed(images)
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().sub(127.5).div(127.5)
        want = torch.nn.functional.normalize(trainer.backbone.eval()(x), dim=1).numpy()
    assert np.abs(emb - want).max() <= 1e-5


def test_export_errors_leave_nothing(backbone_file, tmp_path, monkeypatch):
    import frmask.train.export as export

    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        export_onnx(tmp_path, tmp_path / "x.onnx")
    with pytest.raises(FileNotFoundError, match="not found"):
        export_onnx(tmp_path / "missing.pth", tmp_path / "x.onnx")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pth"):
        export_onnx(tmp_path / "junk.pth", tmp_path / "x.onnx")
    monkeypatch.setattr(export, "verify_onnx", lambda *a, **k: (0.5, 3.0))
    with pytest.raises(ValueError, match="differs from torch by 0.5"):
        export_onnx(backbone_file, tmp_path / "x.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pth"]


def test_teacher_reads_depth_and_size_from_a_state_dict(tmp_path):
    from frmask.train.teacher import load_teacher

    path = tmp_path / "t.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in get_backbone("r34", embedding_size=64).state_dict().items()}},
               path)
    teacher = load_teacher(path)
    assert teacher.embedding_size == 64 and len(teacher.model.layer3) == 6
    assert not any(p.requires_grad for p in teacher.model.parameters()) and not teacher.model.training
    out = teacher(torch.zeros(2, 3, 112, 112))
    assert out.shape == (2, 64) and not out.requires_grad
