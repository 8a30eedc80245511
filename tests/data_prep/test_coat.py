"""Tests for data_prep.coat: the rebuild on synthetic matrices, and against the real
Coat in ../shared/data (skipped where absent) and the embedded coat_rebuilt."""

from __future__ import annotations

import numpy as np
import pytest

from advjax.data import load_dataset, load_split_dir
from data_prep import coat, raw
from tests.helpers import REPO, SHARED_DATA, run_module

RAW = SHARED_DATA / "coat_raw"


def _table(matrix: np.ndarray, path: str = "m") -> raw.Table:
    text = "\n".join(" ".join(str(int(v)) for v in row) for row in matrix) + "\n"
    return raw.parse_table(text, path, "matrix", raw.Columns(), header=True)


def _positives(matrix: np.ndarray, kept_items: np.ndarray) -> set[tuple[int, int]]:
    users, items = np.nonzero(matrix >= 4)
    return set(zip(users.tolist(), np.searchsorted(kept_items, items).tolist(), strict=True))


def _pairs(split, name):
    part = {"train": split.train, "valid": split.valid}.get(name) or split.tests[name]
    return set(zip(part.users().tolist(), part.items.tolist(), strict=True))


def test_rebuild_on_a_small_matrix():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 6, size=(30, 12)) * (rng.random((30, 12)) < 0.5)
    test = rng.integers(0, 6, size=(30, 12)) * (rng.random((30, 12)) < 0.3)
    train[:, 3] = np.minimum(train[:, 3], 3)  # column 3: no positive anywhere
    test[:, 3] = np.minimum(test[:, 3], 3)
    train[0] = [5] + [0] * 11  # user 0: one positive
    split = coat.rebuild(_table(train), _table(test), valid_share=0.3, seed=1)
    assert 3 not in split.kept_items and len(split.kept_items) == 11
    train_pos = _positives(train, split.kept_items)
    assert split.train.keys() | split.valid.keys() == train_pos
    assert not split.train.keys() & split.valid.keys()
    assert len(split.valid) == round(0.3 * len(train_pos))
    # Every user and item of train.ascii's positives keeps a training pair.
    assert {u for u, _ in train_pos} == set(split.train.users.tolist())
    assert {i for _, i in train_pos} == set(split.train.items.tolist())
    test_pos = _positives(test, split.kept_items)
    assert split.test.keys() == test_pos


def test_split_valid_is_seeded():
    users = np.repeat(np.arange(20), 5)
    items = np.tile(np.arange(5), 20)
    a = coat.split_valid(users, items, 0.29, np.random.default_rng(0))
    b = coat.split_valid(users, items, 0.29, np.random.default_rng(0))
    assert (a == b).all() and a.sum() == 29


def test_rebuild_matches_shipped_coat_except_the_leak(tmp_path):
    if not (RAW / "train.ascii").is_file() or not (SHARED_DATA / "coat").is_dir():
        pytest.skip(f"{RAW} or {SHARED_DATA / 'coat'} not present")
    out, report = tmp_path / "coat_rebuilt", tmp_path / "report.md"
    proc = run_module(
        "data_prep.coat", f"--raw={RAW}", f"--out={out}",
        f"--compare={SHARED_DATA / 'coat'}", f"--report={report}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ours = load_split_dir(out, warn=lambda line: None)
    shipped = load_split_dir(SHARED_DATA / "coat", warn=lambda line: None)
    assert (ours.n_users, ours.n_items) == (shipped.n_users, shipped.n_items) == (290, 295)
    assert _pairs(ours, "test_ood") == _pairs(shipped, "test_ood") == _pairs(ours, "test_id")
    ours_tv = _pairs(ours, "train") | _pairs(ours, "valid")
    shipped_tv = _pairs(shipped, "train") | _pairs(shipped, "valid")
    assert len(ours_tv) == 1905 and ours_tv < shipped_tv
    leaked = shipped_tv - ours_tv
    assert len(leaked) == 11 and leaked <= _pairs(shipped, "test_ood")
    assert (ours.train.nnz, ours.valid.nnz) == (1353, 552)
    text = report.read_text()
    assert "Matches: both keep the 295 raw columns" in text
    assert "| train | 28 | 121 | 124 | 0 | 4 |" in text
    assert "Rebuilt: no leak (0 " in text
    # The embedded copy is this command's output.
    embedded = REPO / "advjax" / "data" / "datasets" / "coat_rebuilt"
    for name in ("train.txt", "valid.txt", "test_id.txt", "test_ood.txt", "ids.json"):
        assert (out / name).read_bytes() == (embedded / name).read_bytes(), name


def test_embedded_coat_rebuilt_loads_by_name():
    split = load_dataset("coat_rebuilt", warn=lambda line: None)
    assert split.name == "coat_rebuilt"
    assert (split.n_users, split.n_items, split.train.nnz, split.valid.nnz) == (290, 295, 1353, 552)
    assert split.tests["test_ood"].nnz == 860
    shipped = load_dataset("coat", warn=lambda line: None)
    # Leak-free: nothing in train/valid that is a test pair but not a shipped train
    # pair of the genuine kind; the shipped split's extra 11 pairs are gone.
    extra = (_pairs(shipped, "train") | _pairs(shipped, "valid")) - (
        _pairs(split, "train") | _pairs(split, "valid")
    )
    assert len(extra) == 11


def test_cli_errors(tmp_path):
    def run(*args):
        return run_module("data_prep.coat", *args, timeout=120)

    proc = run(f"--raw={tmp_path}", f"--out={tmp_path / 'o'}")
    assert proc.returncode == 1 and "train.ascii: no such file" in proc.stderr
    (tmp_path / "train.ascii").write_text("5 0\r\n4\r\n")
    (tmp_path / "test.ascii").write_text("5 0\n0 4\n")
    proc = run(f"--raw={tmp_path}", f"--out={tmp_path / 'o'}")
    assert proc.returncode == 1 and "train.ascii:2: 1 values, expected 2" in proc.stderr
    proc = run(f"--raw={tmp_path}", f"--out={tmp_path / 'o'}", "--report=r.md")
    assert proc.returncode == 1 and "--report needs --compare" in proc.stderr
    assert not (tmp_path / "o").exists()
