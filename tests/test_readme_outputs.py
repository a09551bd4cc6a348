"""Every file or folder a README example writes lands where git ignores it (a newcomer who runs the examples
in a checkout must not see them as new files to commit)."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_OPTIONS = ("--out", "--json", "--csv", "--plot", "--hist", "--html")


def readme_commands() -> list[list[str]]:
    """The ``frmask`` command lines of the README: fenced blocks (``$`` prompts, ``\\`` continuations) and
    inline code spans."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```(?:console|bash)\n(.*?)```", text, flags=re.S):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"`(frmask [^`]+)`", text)
    commands = []
    for line in lines:
        line = line.split("#", 1)[0].strip().removeprefix("$ ")
        for part in line.split("&&"):
            words = shlex.split(part.strip().replace(".venv/bin/frmask", "frmask"))
            if words[:1] == ["frmask"]:
                commands.append(words)
    return commands


def output_paths(words: list[str]) -> list[str]:
    found = []
    for k, word in enumerate(words):
        option, _, value = word.partition("=")
        if option in OUTPUT_OPTIONS:
            value = value or (words[k + 1] if k + 1 < len(words) else "")
            placeholder = Path(value).stem.isupper()  # DIR, FILE.bin: a name the reader chooses
            if value and value != "-" and not placeholder and not value.startswith(("..", "/")):
                found.append(value)
    if words[1:2] == ["demo"] and "--out" not in words:
        found.append("frmask-demo")  # the demo's default output folder
    return found


def test_readme_example_outputs_are_git_ignored():
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(ROOT), "rev-parse"],
                                                     capture_output=True).returncode:
        pytest.skip("not a git checkout")
    commands = readme_commands()
    paths = sorted({p for words in commands for p in output_paths(words)})
    assert len(commands) > 10 and "runs/sface-mfr2" in paths  # the parser found the examples
    tracked = []
    for path in paths:
        probe = path.rstrip("/") + "/x" if "." not in Path(path).name else path  # a folder: a file in it
        done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", probe])
        if done.returncode != 0:
            tracked.append(path)
    assert tracked == [], "README examples write these outside .gitignore"
