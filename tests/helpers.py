"""Shared test plumbing: where the real datasets live, and running a CLI module."""

import os
import pathlib
import subprocess
import sys

import pytest

from advjax.data import load_split_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# Shared splits whose training file is not train.txt (the --train_file they need).
TRAIN_FILES = {"kuairec2": "train_reconstructed"}


def shared_split(name: str):
    """Loads ../shared/data/NAME, skipping the test where it is not on this machine."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return load_split_dir(path, train_file=TRAIN_FILES.get(name))


def run_module(module: str, *args: str, cwd=REPO, timeout: float = 300):
    """Runs ``python -m MODULE ARGS`` in `cwd` (the repository by default) with the
    repository importable; returns the CompletedProcess with text stdout and stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
