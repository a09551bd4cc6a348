"""The synthesizer's fast paths give the same bytes as the straightforward computations they replace:
bulk colour draws vs numpy's generators, the batched BGR blend vs the float32 formula, the on-disk template
cache vs drawing, the streamed .bin write vs the in-memory pickle, and a whole synth_bin run vs a per-image oracle."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from frmask.io.insightface_bin import BinBenchmark, decode_image, read_bin, write_bin
from frmask.synth import fastrng, template_cache
from frmask.synth.benchmark import (JPEG_QUALITY, MaskSpec, _Colorizer, frame_landmarks,
                                    load_template, shared_warp, synth_bin)
from frmask.synth.colors import load_palette, random_color
from frmask.synth.render import apply_mask_batch, blend_inplace, warp_template
from frmask.synth.seeding import image_rng
from frmask.synth.shapes import builtin_template

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FRMASK_TEMPLATE_CACHE", str(tmp_path / "template-cache"))


# ------------------------------------------------------------------------------------------ colours

@pytest.mark.parametrize("palette", [None, "realistic", "one", "big"])
def test_bulk_colours_equal_numpy_generators(palette):
    pal = {None: None, "realistic": load_palette("realistic").rgb, "one": np.array([[9, 8, 7]], np.uint8),
           "big": np.random.default_rng(1).integers(0, 256, (1000, 3)).astype(np.uint8)}[palette]
    for seed, dataset in ((0, "lfw"), (2**63 + 5, "cfp_fp"), (77, "écrit")):
        indices = [0, 1, 2, 3, 1000, 65535, 2**32 - 1, 2**32, 2**40 + 7, 2**64 - 1] + list(range(50, 350))
        fast = fastrng.random_colors(seed, dataset, indices, pal)
        slow = np.stack([random_color(image_rng(seed, dataset, i, "color"), pal) for i in indices])
        assert fast.dtype == np.uint8 and np.array_equal(fast, slow)


def test_bulk_colours_defer_to_numpy_where_lemire_could_reject():
    # m = word * range; a low half below the range is where numpy may draw again: the fast path must not guess.
    assert fastrng._bounded(iter([0]), 1, 5) is None
    assert fastrng._bounded(iter([2**31]), 1, 3) == [1]  # 2**31 * 3 = 1.5 * 2**32: low half 2**31, high 1
    assert fastrng.selfcheck()


def test_bulk_colours_reject_bad_indices():
    with pytest.raises(ValueError, match="index"):
        fastrng.random_colors(0, "lfw", [-1], None)


def test_colorizer_many_equals_single_calls(tmp_path):
    color_file = tmp_path / "colors.txt"
    color_file.write_text("".join(f"{i},[{i} {2 * i} {3 * i % 256}]\n" for i in range(40)))
    for colors in ("realistic", "uniform", str(color_file)):
        col = _Colorizer(MaskSpec(colors=colors), 11, "agedb_30")
        idx = list(range(0, 40, 3))
        assert np.array_equal(col.many(idx), np.stack([col(i) for i in idx]))


# ------------------------------------------------------------------------------------------ blending

def _blend_reference(images, warped, colors):
    """The blend formula written out per image in float32 with (h, w, 1) factors."""
    out = images.copy()
    y0, y1, x0, x1 = warped.bbox
    alpha = warped.alpha[y0:y1, x0:x1, None]
    shade = warped.shade[y0:y1, x0:x1, None]
    for k in range(len(images)):
        win = out[k, y0:y1, x0:x1].astype(np.float32) * (np.float32(1) - alpha)
        if colors is None:
            win += alpha * warped.rgb[y0:y1, x0:x1]
        else:
            win += np.minimum(colors[k].astype(np.float32) * shade, np.float32(255)) * alpha
        out[k, y0:y1, x0:x1] = np.rint(win).astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def warped():
    return warp_template(builtin_template("kn95", scale=2), frame_landmarks(), (112, 112))


@pytest.mark.parametrize("kind", ["palette", "uniform", "own", "many-palette"])
def test_batched_blend_equals_formula(warped, kind):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (70, 112, 112, 3), dtype=np.uint8)
    if kind == "palette":
        colors = load_palette("realistic").rgb[rng.integers(0, 22, 70)].astype(np.float64)
    elif kind == "many-palette":  # more distinct colours than the paint cache keeps, repeated
        colors = np.tile(rng.integers(0, 256, (35, 3)), (2, 1)).astype(np.float64)
    elif kind == "uniform":
        colors = rng.integers(0, 256, (70, 3)).astype(np.float64)
    else:
        colors = None
    out = apply_mask_batch(images, warped, colors)
    assert np.array_equal(out, _blend_reference(images, warped, colors))
    if colors is not None:  # BGR images with BGR colours: the same bytes, channels swapped
        bgr = np.ascontiguousarray(images[..., ::-1])
        blend_inplace(bgr, warped, np.ascontiguousarray(colors[:, ::-1]).astype(np.float32))
        assert np.array_equal(bgr[..., ::-1], out)


def test_blend_from_many_threads(warped):
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, (8, 40, 112, 112, 3), dtype=np.uint8)
    colors = rng.integers(0, 256, (8, 40, 3)).astype(np.float64)
    results = [None] * 8

    def work(k):
        results[k] = apply_mask_batch(images[k], warped, colors[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(8):
        assert np.array_equal(results[k], _blend_reference(images[k], warped, colors[k]))


# ------------------------------------------------------------------------------------------ template cache

def test_template_cache_hit_is_identical_and_survives_damage(tmp_path, monkeypatch):
    folder = tmp_path / "tc"
    monkeypatch.setenv("FRMASK_TEMPLATE_CACHE", "off")
    drawn = builtin_template("cloth", scale=1)
    assert not folder.exists()
    monkeypatch.setenv("FRMASK_TEMPLATE_CACHE", str(folder))
    first = builtin_template("cloth", scale=1)
    (entry,) = folder.glob("builtin-*.npz")
    second = builtin_template("cloth", scale=1)
    assert np.array_equal(first.rgba, drawn.rgba) and np.array_equal(second.rgba, drawn.rgba)
    assert second.anchors == drawn.anchors
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte: the checksum (or the zip reader) rejects it
    entry.write_bytes(bytes(data))
    assert np.array_equal(builtin_template("cloth", scale=1).rgba, drawn.rgba)
    assert template_cache._load(entry) is not None  # rewritten
    entry.write_bytes(b"")  # truncated
    assert np.array_equal(builtin_template("cloth", scale=1).rgba, drawn.rgba)
    assert not list(folder.glob(".*.tmp"))  # no temporary files left behind
    other = builtin_template("cloth", scale=1.5)  # another key: another entry
    assert len(list(folder.glob("builtin-*.npz"))) == 2 and other.rgba.shape != drawn.rgba.shape


@pytest.mark.parametrize("mask", ["surgical", "maskinv"])
def test_cached_shared_warp_equals_the_warp(tmp_path, monkeypatch, mask):
    monkeypatch.setenv("FRMASK_TEMPLATE_CACHE", str(tmp_path / "tc"))
    path = SHARED / "templates" / "maskinv_mask_img.png"
    if mask == "maskinv" and not path.is_file():
        pytest.skip("shared test data (../shared/data) not present")
    template = load_template(MaskSpec(template=str(path)) if mask == "maskinv" else MaskSpec(mask_type=mask))
    direct = warp_template(template, frame_landmarks(), (112, 112))
    for _ in range(2):  # computed and stored, then read back
        cached = shared_warp(template)
        for name in ("alpha", "shade", "rgb", "homography"):
            a, b = getattr(direct, name), getattr(cached, name)
            assert a.dtype == b.dtype and np.array_equal(a, b) and not b.flags.writeable
    assert len(list((tmp_path / "tc").glob("warp-*.npz"))) == 1
    reordered = type(template)(template.name, template.rgba, dict(reversed(list(template.anchors.items()))))
    shared_warp(reordered)  # anchors in another order: another key (the fit's rounding may differ)
    assert len(list((tmp_path / "tc").glob("warp-*.npz"))) == 2


def test_template_cache_unwritable_folder_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FRMASK_TEMPLATE_CACHE", str(blocker / "sub"))
    assert builtin_template("n95", scale=1).rgba.shape == (92, 128, 4)


def test_template_cache_key_follows_the_code(monkeypatch):
    a = template_cache.code_fingerprint(("frmask.synth.shapes",))
    b = template_cache.code_fingerprint(("frmask.synth.shapes", "frmask.synth.render"))
    assert a != b and len(a) == 64
    assert template_cache.cache_dir() is not None
    monkeypatch.setenv("FRMASK_TEMPLATE_CACHE", "")
    assert template_cache.cache_dir() is None


# ------------------------------------------------------------------------------------------ .bin writing

def test_streamed_bin_write_equals_the_in_memory_pickle(tmp_path):
    import pickle

    from frmask.io.insightface_bin import PICKLE_PROTOCOL

    blobs = [bytes([k]) * (10 + 9000 * (k % 3)) for k in range(30)]
    images = [blobs[k % 7] for k in range(20)] + blobs[:10]  # shared objects: pickle memo references
    bench = BinBenchmark(images, np.array([k % 3 == 0 for k in range(15)]))
    write_bin(tmp_path / "a.bin", bench)
    payload = (list(bench.images), [bool(flag) for flag in bench.issame])
    assert (tmp_path / "a.bin").read_bytes() == pickle.dumps(payload, protocol=PICKLE_PROTOCOL)


# ------------------------------------------------------------------------------------------ whole run

def _jpeg(k: int) -> bytes:
    rng = np.random.default_rng(k)
    y, x = np.mgrid[0:112, 0:112]
    img = np.stack([120 + 60 * np.sin(x / (9 + k)), 100 + 50 * np.cos(y / 11), 90 + 30 * np.sin((x - y) / 7)], -1)
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


@pytest.mark.parametrize("colors", ["realistic", "uniform"])
def test_synth_bin_equals_per_image_oracle(tmp_path, colors):
    images = [_jpeg(k) for k in range(24)]
    png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(images[5], np.uint8), cv2.IMREAD_COLOR))[1].tobytes()
    images[5] = png  # PNG images stay PNG
    src = tmp_path / "in.bin"
    write_bin(src, BinBenchmark(images, np.array([k % 2 == 0 for k in range(12)])))
    spec = MaskSpec(mask_type="surgical", colors=colors)
    out = tmp_path / "out.bin"
    synth_bin(src, out, benchmark="calfw", spec=spec, seed=4, workers=2, chunk=7)
    got = read_bin(out).images
    warped = warp_template(load_template(spec), frame_landmarks(), (112, 112))
    palette = None if colors == "uniform" else load_palette(colors)
    rows = (tmp_path / "out.bin.masks.csv").read_text().splitlines()[1:]
    for i, blob in enumerate(images):
        color = random_color(image_rng(4, "calfw", i, "color"), palette)
        masked = apply_mask_batch(decode_image(blob)[None], warped, color[None].astype(np.float64))[0]
        bgr = cv2.cvtColor(masked, cv2.COLOR_RGB2BGR)
        ext, params = (".png", []) if i == 5 else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert got[i] == cv2.imencode(ext, bgr, params)[1].tobytes(), i
        assert rows[i] == f"{i},1,surgical,{color[0]},{color[1]},{color[2]},,high,"
