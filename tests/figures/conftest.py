"""The tiny trained runs the checkpoint-reading figures' tests share (trained once)."""

import pytest

from tests.figures.trained import train_tiny_runs


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Context of tiny runs: AdvInfoNCE at seeds 1 and 2, InfoNCE at seed 1."""
    return train_tiny_runs(tmp_path_factory.mktemp("tiny_runs"))
