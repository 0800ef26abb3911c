"""What ``pip install .`` ships: every package folder, the shipped weights as package data, and a run of a
shipped config from an installed (non-editable) fedkd in another directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache")


def _folder(package: str) -> Path:
    """The source folder of ``package`` under pyproject's package-dir (a mapped parent maps its children)."""
    mapping = SETUPTOOLS.get("package-dir", {})
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        parent = ".".join(parts[:cut])
        if parent in mapping:
            return ROOT / mapping[parent] / Path(*parts[cut:])
    return ROOT / Path(*parts)


def test_every_package_folder_is_listed_and_every_listed_package_exists():
    listed = set(SETUPTOOLS["packages"])
    folders = {_folder(p) for p in listed}
    for init in ROOT.glob("*/**/__init__.py"):
        if init.parts[len(ROOT.parts)] not in ("tests", ".venv", "build", "runs"):
            assert init.parent in folders, f"{init.parent.relative_to(ROOT)} is a package missing from pyproject.toml"
    for package in listed:
        assert _folder(package).is_dir(), package


def test_the_shipped_weights_are_package_data():
    data = SETUPTOOLS["package-data"]
    for name in ("teachers", "pretrained"):
        package = next(p for p, folder in SETUPTOOLS["package-dir"].items() if folder == name)
        weights = sorted((ROOT / name).glob("*/model.safetensors"))
        assert weights, name
        for path in weights:
            relative = path.relative_to(ROOT / name)
            assert any(relative.match(pattern) for pattern in data[package]), f"{path} is not package data"


@pytest.mark.slow
def test_a_non_editable_install_runs_a_shipped_config_from_another_directory(tmp_path):
    """``pip install .`` (not editable) into a fresh venv, then ``fedkd run`` on the installed dark_knowledge.toml
    from an unrelated folder: the config and the GAN teacher and FID net it names come from the installed package.

    The dependencies (torch, ...) are this environment's, seen through a .pth file, so the test takes seconds
    rather than the minutes of a cold dependency install; fedkd itself is built and installed from a copy of
    the source, and this environment's editable fedkd stays invisible (its finder is only a .pth file away).
    """
    source, venv, elsewhere = tmp_path / "source", tmp_path / "venv", tmp_path / "elsewhere"
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Without PYTHONPATH: an in-process Ray run earlier in the session may have put the checkout on it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PIP_NO_INDEX": "1", "FEDKD_QUIET": "1"}
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", str(source)],
                   check=True, env=env, capture_output=True)
    shutil.rmtree(source)  # nothing may be read from the source tree any more
    elsewhere.mkdir()
    imported = subprocess.run([python, "-c", "import fedkd; print(fedkd.__file__)"], cwd=elsewhere, check=True,
                              capture_output=True, text=True, env=env).stdout.strip()
    assert Path(imported).is_relative_to(site), imported
    (config,) = site.glob("*/dark_knowledge.toml")  # the shipped configs are package data
    done = subprocess.run([venv / "bin" / "fedkd", "run", str(config), "--set", "distill.steps=20",
                           "--set", "eval.samples=200", "--set", "eval.grid=false", "--out", "run"],
                          cwd=elsewhere, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "final fid_like/teacher" in done.stdout
    assert (elsewhere / "run" / "metrics.csv").is_file()
