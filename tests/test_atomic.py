"""Tests of frmask._atomic, _temps, _manifest, _atomic_folder and _paths: output folders replaced only when
frmask wrote everything in them, stale temporary files of killed runs cleaned (only frmask's own, only when
stale), path relations, errors naming the destination."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from frmask import _atomic, _atomic_folder, _temps
from frmask._atomic import atomic_path, write_bytes_atomic
from frmask._atomic_folder import make_temp_dir, replace_dir
from frmask._manifest import MANIFEST
from frmask._temps import remove_stale_temps
from frmask._paths import is_inside, refuse_nested, refuse_same, same_file


def _build(target: Path, files: dict[str, str]) -> Path:
    tmp = make_temp_dir(target)
    for rel, text in files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text)
    return tmp


def _refused(out: Path, legacy, pattern: str) -> None:
    tmp = _build(out, {"new.txt": "x"})
    try:
        with pytest.raises(ValueError, match=pattern):
            replace_dir(tmp, out, legacy=legacy)
    finally:
        _atomic_folder.discard_temp_dir(tmp)


def _old(path: Path) -> None:
    """Make ``path`` look like a leftover of an earlier process (modified before this one started)."""
    t = _temps._STARTED - 60
    os.utime(path, (t, t), follow_symlinks=False)


def test_new_folder_gets_a_manifest_and_is_replaced_whole(tmp_path):
    out = tmp_path / "run"
    replace_dir(_build(out, {"a.txt": "1", "sub/b.txt": "2"}), out)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "a.txt", "sub"]
    replace_dir(_build(out, {"c.txt": "3"}), out)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary or old folder left


@pytest.mark.parametrize("change", ["added", "edited", "added-dir"])
def test_a_run_folder_holding_anything_else_is_refused_and_kept(tmp_path, change):
    out = tmp_path / "run"
    replace_dir(_build(out, {"a.txt": "1"}), out)
    if change == "added":
        (out / "important.txt").write_text("mine")
    elif change == "edited":  # same size: the new modification time sends it to the SHA-256
        (out / "a.txt").write_text("9")
        os.utime(out / "a.txt", ns=(0, (out / "a.txt").stat().st_mtime_ns + 10**9))
    else:
        (out / "src").mkdir()
    before = {str(p.relative_to(out)): p.is_file() and p.read_text() for p in out.rglob("*")}
    _refused(out, None, r"not replaced.*(important.txt \(not written|a.txt \(changed|src \(not wr)")
    assert {str(p.relative_to(out)): p.is_file() and p.read_text() for p in out.rglob("*")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_user_deleting_files_from_a_run_does_not_block_it(tmp_path):
    out = tmp_path / "run"
    replace_dir(_build(out, {"a.txt": "1", "b.txt": "2"}), out)
    (out / "b.txt").unlink()
    os.utime(out / "a.txt", ns=(0, (out / MANIFEST).stat().st_mtime_ns + 10**9))  # touched, same contents
    replace_dir(_build(out, {"c.txt": "3"}), out)
    assert (out / "c.txt").is_file() and not (out / "a.txt").exists()


def test_folders_without_a_manifest(tmp_path):
    legacy = {"metrics.json", "scores.csv"}

    def known(folder):
        return legacy if (folder / "metrics.json").is_file() else None

    out = tmp_path / "old"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    (out / "scores.csv").write_text("x")
    replace_dir(_build(out, {"metrics.json": "{}"}), out, legacy=known)  # an older run: only its own files
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "metrics.json"]
    proj = tmp_path / "proj"  # the case: a metrics.json beside the user's files
    (proj / "src").mkdir(parents=True)
    (proj / "metrics.json").write_text("{}")
    (proj / "important.txt").write_text("x")
    _refused(proj, known, r"important.txt \(not written by frmask\), src \(not written")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    _refused(foreign, known, r"not an frmask run or output folder, and not empty \(notes.txt\)")
    empty = tmp_path / "empty"
    empty.mkdir()
    replace_dir(_build(empty, {"a": "1"}), empty)
    assert (empty / "a").is_file()
    assert (proj / "important.txt").is_file() and (proj / "src").is_dir() and (foreign / "notes.txt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_current_folder_parents_symlinks_and_files_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "proj" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for out in (Path("."), Path(".."), tmp_path / "proj", Path("../work")):
        with pytest.raises(ValueError, match="is the current folder or holds it"):
            _atomic_folder.check_replaceable(out)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="is a symbolic link"):
        _atomic_folder.check_replaceable(tmp_path / "link")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        _atomic_folder.check_replaceable(tmp_path / "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "link", "proj", "real"]


# ------------------------------------------------------------------------------------------- stale temps


def test_stale_rule_removes_only_frmasks_own_unlocked_old_temps(tmp_path):
    target = tmp_path / "x.bin"
    names = {"stale": ".x.bin.k2j3h4g5.tmp", "fresh": ".x.bin.abcdefgh.tmp", "other": ".y.bin.k2j3h4g5.tmp",
             "plain": ".x.bin.tmp", "visible": "x.bin.k2j3h4g5.tmp", "user": ".x.bin.notes.txt"}
    for key, name in names.items():
        (tmp_path / name).write_text(key)
        if key == "fresh":  # modified after the cleaning process started
            os.utime(tmp_path / name, (_temps.time.time() + 120,) * 2)
        else:
            _old(tmp_path / name)
    (tmp_path / ".x.bin.zzzzzzzz.tmp").symlink_to(tmp_path / names["user"])
    _old(tmp_path / ".x.bin.zzzzzzzz.tmp")
    held = tmp_path / ".x.bin.lockedxx.tmp"  # another live writer holds its lock
    held.write_text("busy")
    _old(held)
    fd = os.open(held, os.O_RDONLY)
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from frmask._atomic import write_bytes_atomic
            write_bytes_atomic({str(target)!r}, b"new")
        """)], capture_output=True, text=True, timeout=60)
        assert child.returncode == 0, child.stderr
    finally:
        os.close(fd)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert names["stale"] not in left  # removed by the next write of x.bin, in another process
    assert set(left) == {"x.bin", held.name, ".x.bin.zzzzzzzz.tmp", *(v for k, v in names.items() if k != "stale")}
    assert target.read_bytes() == b"new"


def test_kill_9_leftovers_are_cleaned_by_the_next_run(tmp_path):
    """A writer killed with SIGKILL inside atomic_path (a .bin's or checkpoint's temp) and inside a folder
    build (a run folder's temp): a live one is left alone, the dead one's go on the next run."""
    target, folder = tmp_path / "big.bin", tmp_path / "run"
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from frmask._atomic import atomic_path
        from frmask._atomic_folder import make_temp_dir
        tmp_dir = make_temp_dir({str(folder)!r})
        (tmp_dir / "part.png").write_bytes(b"x")
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"x" * 100000)
            print("ready", flush=True)
            time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        temps = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        assert len(temps) == 2
        for p in tmp_path.iterdir():
            _old(p)  # even when old, a held lock protects them
        nxt = [sys.executable, "-c", textwrap.dedent(f"""
            from frmask._atomic_folder import make_temp_dir
            from frmask._temps import remove_stale_temps
            print(len(remove_stale_temps({str(tmp_path)!r}, "big.bin")), len(remove_stale_temps({str(tmp_path)!r}, "run")))
        """)]
        assert subprocess.run(nxt, capture_output=True, text=True, timeout=60).stdout.split() == ["0", "0"]
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
        writer.stdout.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == temps  # kill -9 leaves them
    assert not target.exists() and not folder.exists()
    assert subprocess.run(nxt, capture_output=True, text=True, timeout=60).stdout.split() == ["1", "1"]
    assert list(tmp_path.iterdir()) == []


def test_stale_old_folder_keeps_what_its_manifest_does_not_list(tmp_path):
    out = tmp_path / "run"
    replace_dir(_build(out, {"a.txt": "1"}), out)
    old = tmp_path / ".run.old-abcdefgh"  # a crash between moving the old run aside and deleting it
    old.mkdir()
    os.replace(out, old / "run")
    (old / "run" / "mine.txt").write_text("user")
    for p in (old, old / "run"):
        _old(p)
    assert remove_stale_temps(tmp_path, "run") == []
    assert sorted(p.name for p in (old / "run").iterdir()) == ["mine.txt"]


def test_atomic_write_failure_leaves_nothing(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"



def _hidden_names(text: str) -> bool:
    return ".tmp" in text or "tmp-" in text


@pytest.mark.parametrize("many", [False, True], ids=["atomic_path", "atomic_paths"])
def test_errors_about_the_temporary_name_the_destination(tmp_path, monkeypatch, many):
    """Issue 15 item 8: an OSError while writing, renaming or making the temporary names the user's path."""
    target = tmp_path / "report.json"

    def writing(block):
        if many:
            with _atomic.atomic_paths([tmp_path / "other.csv", target]) as temps:
                block(temps[1])
        else:
            with atomic_path(target) as tmp:
                block(tmp)

    def disk_full(tmp):  # what a failing open/write of the temporary raises
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    with pytest.raises(OSError, match=rf"^\[Errno {errno.ENOSPC}\] {re.escape(str(target))}: cannot write the file: "
                                      rf"No space left on device$") as info:
        writing(disk_full)
    assert not _hidden_names(str(info.value))

    def refused_rename(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(src), None, str(dst))

    with monkeypatch.context() as patch:
        patch.setattr(_atomic.os, "replace", refused_rename)
        with pytest.raises(OSError, match=rf"{re.escape(str(target))}: cannot write the file: "
                           rf"Permission denied$") as info:
            writing(lambda tmp: tmp.write_text("{}"))
    assert not _hidden_names(str(info.value))

    def no_temporaries(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / ".report.json.abcdefgh.tmp"))

    with monkeypatch.context() as patch:
        patch.setattr(_atomic.tempfile, "mkstemp", no_temporaries)
        with pytest.raises(OSError, match=r"report\.json: cannot write the file: Permission denied$|other\.csv: cannot "
                                          r"write the file: Permission denied$") as info:
            writing(lambda tmp: None)
    assert not _hidden_names(str(info.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left behind by any of them

    def users_own_file(tmp):  # an error about another file passes unchanged
        open(tmp_path / "missing-input.csv")

    with pytest.raises(FileNotFoundError, match="missing-input.csv"):
        writing(users_own_file)


# ------------------------------------------------------------------------------------------------ paths


def test_path_relations(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "x.bin").write_bytes(b"x")
    (tmp_path / "alias.bin").symlink_to(tmp_path / "x.bin")
    os.link(tmp_path / "x.bin", tmp_path / "hard.bin")
    (tmp_path / "dlink").symlink_to(tmp_path / "d")
    assert same_file(tmp_path / "alias.bin", tmp_path / "x.bin") and same_file(tmp_path / "hard.bin", tmp_path / "x.bin")
    assert same_file(tmp_path / "d" / ".." / "x.bin", tmp_path / "x.bin")
    assert not same_file(tmp_path / "new.bin", tmp_path / "x.bin")
    assert is_inside(tmp_path / "dlink" / "sub" / "new", tmp_path / "d") and not is_inside(tmp_path, tmp_path / "d")
    for alias in ("x.bin", "alias.bin", "hard.bin"):
        with pytest.raises(ValueError, match="is the input"):
            refuse_same(tmp_path / alias, tmp_path / "x.bin")
    refuse_same(tmp_path / "new.bin", tmp_path / "x.bin")
    for out, pattern in ((tmp_path / "d", "must not be"), (tmp_path / "dlink" / "sub", "lie inside"),
                         (tmp_path, "must not hold")):
        with pytest.raises(ValueError, match=pattern):
            refuse_nested(out, tmp_path / "d")
