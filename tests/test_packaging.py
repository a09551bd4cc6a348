"""The package list in pyproject.toml names every frmask subpackage (it is explicit because data/colors/ is
mapped to frmask.colors), and the bundled data files are reachable as resources."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "frmask").rglob("__init__.py")}
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert "frmask.colors" in listed and config["package-dir"]["frmask.colors"] == "data/colors"


def test_bundled_resources():
    from frmask._resources import colors_dir, data_file

    assert data_file("example_scores.csv").is_file()
    assert (colors_dir() / "__init__.py").is_file()
