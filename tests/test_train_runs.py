"""Run-folder bookkeeping of ``frmask train`` on a tiny forged identity folder (no shared data needed): nothing
left behind by an error before the first checkpoint, the first log row after a resume, checkpoint pruning."""

from __future__ import annotations

import csv
import os

import pytest

torch = pytest.importorskip("torch")

from forged_images import random_identity_folders  # noqa: E402
from frmask.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint  # noqa: E402
from frmask.train.config import load_config  # noqa: E402
from train_hooks import ctrl_c_after

pytestmark = pytest.mark.usefixtures("two_torch_threads")


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("forged") / "faces"
    random_identity_folders(root, identities=4, per_identity=3, seed=0)  # 12 images: one batch of 8 fits
    return root


def _small(**changes):
    """The small scale cut further for speed: batch 2, a 16-d embedding (a checkpoint of 93 MB, not 192)."""
    return load_config("elasticface", "small", {"tensorboard": False, "checkpoint_every": 100, "batch_size": 2,
                                                "lr_batch": 2, "embedding_size": 16, **changes})


def _rows(run):
    with open(run / "log.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "images_per_s"} for r in csv.DictReader(f)]


def test_paper_scale_on_small_data_fails_before_writing(faces, tmp_path):
    """The friction: the paper scale (batch 512) on 12 images built iResNet-100, wrote config.toml, then failed."""
    from frmask.train.loop import train

    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"12 images, fewer than one global batch of 512: use a smaller "
                                         r"--batch-size, or --scale small"):
        train(load_config("elasticface", "paper", {"tensorboard": False}), faces, run, device="cpu", progress=False)
    assert not run.exists()


def test_error_before_the_first_checkpoint_leaves_nothing(faces, tmp_path):
    from frmask.train.loop import train

    def fail(done, trainer):
        if done == 1:
            raise RuntimeError("boom")

    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        train(_small(steps=2, log_every=1), faces, run, progress=False, on_step=fail)
    assert not run.exists()  # config.toml and log.csv (written at step 1) are gone, and the folder frmask made
    # a folder of the user's keeps the user's files
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="boom"):
        train(_small(steps=2, log_every=1), faces, run, progress=False, on_step=fail)
    assert sorted(os.listdir(run)) == ["notes.txt"]


def test_first_log_row_after_resume_equals_the_uninterrupted_row(faces, tmp_path):
    """4 steps logged every 3: interrupted at step 2 (a checkpoint mid-interval) and resumed, the row of step
    3 averages steps 1-3 as the straight run's does (the running sums travel in the checkpoint)."""
    from frmask.train.loop import train

    config = _small(steps=4, log_every=3, keep_checkpoints=2)
    straight = train(config, faces, tmp_path / "straight", progress=False)
    assert straight.step == 4

    run = tmp_path / "resumed"
    first = train(config, faces, run, progress=False, on_step=ctrl_c_after(2))
    assert first.interrupted and first.step == 2
    interval = load_checkpoint(run)["log_interval"]
    assert interval["count"] == 2 and interval["sums"][0] > 0 and interval["seconds"] > 0
    second = train(config, faces, run, resume=True, progress=False)
    assert second.step == 4 and [s for s, _ in list_checkpoints(run)] == [2, 4]  # keep_checkpoints = 2
    want = _rows(tmp_path / "straight")
    assert [r["step"] for r in want] == ["3", "4"]
    assert _rows(run) == want


def test_keep_checkpoints_prunes_the_oldest(tmp_path):
    state = {"weights": torch.zeros(3)}
    for step in range(1, 5):
        save_checkpoint(tmp_path / "keep2", step, state, keep=2)
        save_checkpoint(tmp_path / "all", step, state, keep=0)
    (tmp_path / "keep2" / "checkpoints" / "notes.txt").write_text("mine")
    save_checkpoint(tmp_path / "keep2", 5, state, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path / "keep2")] == [4, 5]
    assert (tmp_path / "keep2" / "checkpoints" / "notes.txt").read_text() == "mine"
    assert [s for s, _ in list_checkpoints(tmp_path / "all")] == [1, 2, 3, 4]
    save_checkpoint(tmp_path / "one", 1, state, keep=1)
    save_checkpoint(tmp_path / "one", 2, state, keep=1)
    assert [s for s, _ in list_checkpoints(tmp_path / "one")] == [2]  # the latest is never removed
    assert load_checkpoint(tmp_path / "one")["step"] == 2
