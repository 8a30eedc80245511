"""Shared test plumbing: where the real datasets live, and running a CLI module."""

import os
import pathlib
import signal
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


def _env(extra: dict | None) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}


def run_module(module: str, *args: str, cwd=REPO, timeout: float = 300, env: dict | None = None):
    """Runs ``python -m MODULE ARGS`` in `cwd` (the repository by default) with the
    repository importable and `env` added to the environment; returns the
    CompletedProcess with text stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd, env=_env(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def kill_module_after(module: str, *args: str, marker: str, env: dict | None = None) -> str:
    """Starts ``python -m MODULE ARGS`` and SIGKILLs it as soon as it prints a line
    starting with `marker`; returns what it printed. Fails if it ended otherwise.

    No sleeping before the kill: on a quiet machine a whole Coat run takes about a
    second, so a delay of even 0.5 s let it finish before the signal.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(marker):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-2000:]
    return "".join(seen)
