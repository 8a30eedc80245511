"""Shared test fixtures' plumbing: where the real datasets live."""

import pathlib

import pytest

from advjax.data import load_split_dir

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Shared splits whose training file is not train.txt (the --train_file they need).
TRAIN_FILES = {"kuairec2": "train_reconstructed"}


def shared_split(name: str):
    """Loads ../shared/data/NAME, skipping the test where it is not on this machine."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return load_split_dir(path, train_file=TRAIN_FILES.get(name))
