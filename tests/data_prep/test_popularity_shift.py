"""Tests for data_prep.popularity_shift: the gamma law per group, disjoint files,
every test user and item known to training, and advjax's loader and evaluators reading
the result unchanged."""

from __future__ import annotations

import json
import pathlib
import subprocess

import numpy as np
import pytest

from advjax.data import load_split_dir
from advjax.errors import ConfigError
from advjax.models.trained import TrainedModel
from data_prep import interactions, popularity_shift
from data_prep.popularity_shift import TEST_ID, TRAIN, VALID, Protocol
from tests.helpers import run_module


def _zipf_pool(n_users: int = 400, n_items: int = 100, n_pairs: int = 12_000, seed: int = 0):
    """Unique (user, item) pairs with long-tailed item popularity."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.6
    users = rng.integers(0, n_users, size=n_pairs * 2)
    items = rng.choice(n_items, size=n_pairs * 2, p=weights / weights.sum())
    keys = np.unique(users * n_items + items)[:n_pairs]
    return keys // n_items, keys % n_items


def _write_split(path: pathlib.Path, users: np.ndarray, items: np.ndarray) -> None:
    path.mkdir()
    (path / "train.txt").write_text(interactions.adjacency_text(users, items))


def test_gamma_law_values():
    law = popularity_shift.gamma_law(100.0, 10.0, 3)
    np.testing.assert_allclose(law, [100.0, 100 / np.sqrt(10), 10.0])
    assert popularity_shift.gamma_law(5.0, 1.0, 4).tolist() == [5.0] * 4


def test_popularity_groups_most_popular_first_equal_sizes():
    items = np.array([3, 3, 3, 1, 1, 0, 4, 4, 4, 4])  # item 2 has no pairs
    group = popularity_shift.popularity_groups(items, 2)
    # Ranked 4 (4 pairs), 3 (3), 1 (2), 0 (1): groups {4, 3} and {1, 0}.
    assert group.tolist() == [1, 1, -1, 0, 0]


@pytest.mark.parametrize("gammas", [(200.0, 10.0, 2.0), (1.0, 50.0)])
def test_redistribute_follows_gamma_law_per_group(gammas):
    users, items = _zipf_pool()
    protocol = Protocol(gammas=gammas, groups=10, test_share=0.05, id_share=0.05, seed=1)
    shifted = popularity_shift.redistribute(users, items, protocol)
    pair_group = shifted.item_group[items]
    for k, gamma in enumerate(gammas):
        counts = np.bincount(pair_group[shifted.roles == TEST_ID + 1 + k], minlength=10)
        expected = popularity_shift.gamma_law(shifted.n0[k], gamma, 10)
        assert np.abs(counts - expected).max() <= 0.5
        assert counts.tolist() == shifted.drawn[k].tolist()
        # N_0 is set so that each OOD test holds test_share of the pool.
        assert abs(expected.sum() - 0.05 * len(users)) < 1e-6
        if gamma > 1:
            assert expected[0] / expected[-1] == pytest.approx(gamma)
    assert (shifted.roles == TEST_ID).sum() == round(0.05 * len(users))


def test_redistribute_valid_mirrors_train_and_known_to_training():
    users, items = _zipf_pool()
    protocol = Protocol(groups=10, test_share=0.05, id_share=0.05)
    shifted = popularity_shift.redistribute(users, items, protocol)
    roles = shifted.roles
    train = roles == TRAIN
    assert set(users) == set(users[train]) and set(items) == set(items[train])
    n_rest = (roles == TRAIN).sum() + (roles == VALID).sum()
    assert (roles == VALID).sum() == round(n_rest * 10 / 70)
    # Validation is drawn uniformly: its popularity profile is close to train's.
    share = [np.bincount(shifted.item_group[items[roles == r]], minlength=10) for r in (0, 1)]
    share = [s / s.sum() for s in share]
    assert np.abs(share[0] - share[1]).max() < 0.05


def test_redistribute_is_seeded():
    users, items = _zipf_pool()
    a = popularity_shift.redistribute(users, items, Protocol(groups=10, test_share=0.05, seed=3))
    b = popularity_shift.redistribute(users, items, Protocol(groups=10, test_share=0.05, seed=3))
    c = popularity_shift.redistribute(users, items, Protocol(groups=10, test_share=0.05, seed=4))
    assert (a.roles == b.roles).all() and not (a.roles == c.roles).all()


def test_redistribute_refuses_what_does_not_fit():
    users, items = _zipf_pool()
    with pytest.raises(ConfigError, match=r"group \d+ of 10 .* lower --test_share \(about"):
        popularity_shift.redistribute(users, items, Protocol(groups=10, test_share=0.3, id_share=0))
    with pytest.raises(ConfigError, match="--groups=500 exceeds"):
        popularity_shift.redistribute(users, items, Protocol(groups=500))
    with pytest.raises(ConfigError, match="--gammas must be numbers >= 1"):
        popularity_shift.redistribute(users, items, Protocol(gammas=(0.5,)))
    with pytest.raises(ConfigError, match="sum to less than 1"):
        popularity_shift.redistribute(users, items, Protocol(test_share=0.3, id_share=0.2))


def test_parse_ratio():
    assert popularity_shift.parse_ratio("60:10") == pytest.approx(1 / 7)
    for bad in ("60", "a:b", "0:10", "60:-1"):
        with pytest.raises(ConfigError, match="--train_valid"):
            popularity_shift.parse_ratio(bad)


def _run(*args: str) -> subprocess.CompletedProcess:
    return run_module("data_prep.popularity_shift", *args, timeout=120)


def _pairs(split, name):
    part = {"train": split.train, "valid": split.valid}.get(name) or split.tests[name]
    return set(zip(part.users().tolist(), part.items.tolist(), strict=True))


def test_cli_files_disjoint_known_and_loadable(tmp_path):
    users, items = _zipf_pool()
    _write_split(tmp_path / "src", users + 5, items)  # ids 0..4 unused: renumbered
    out = tmp_path / "shifted"
    proc = _run(
        f"--split_dir={tmp_path / 'src'}",
        "--gammas=200,10,2",
        "--groups=10",
        "--test_share=0.05",
        "--id_share=0.05",
        "--seed=2",
        f"--out={out}",
    )
    assert proc.returncode == 0, proc.stderr
    warnings = []
    split = load_split_dir(out, warn=warnings.append)
    assert warnings == []
    assert list(split.tests) == ["test_id", "test_ood_1", "test_ood_2", "test_ood_3"]
    names = ["train", "valid", *split.tests]
    sets = {name: _pairs(split, name) for name in names}
    for a in names:
        for b in names:
            if a < b:
                assert not sets[a] & sets[b], (a, b)
    assert sum(len(s) for s in sets.values()) == len(users)
    train_users = {u for u, _ in sets["train"]}
    train_items = {i for _, i in sets["train"]}
    for name in names[1:]:
        assert {u for u, _ in sets[name]} <= train_users
        assert {i for _, i in sets[name]} <= train_items
    assert split.n_users == len(np.unique(users)) and split.n_items == len(np.unique(items))
    # The per-group counts on disk follow the recorded law.
    record = json.loads((out / "shift.json").read_text())
    ids = json.loads((out / "ids.json").read_text())
    assert ids["users"]["5"] == 0
    old_item = {new: int(old) for old, new in ids["items"].items()}
    group = popularity_shift.popularity_groups(items, 10)
    for k, entry in enumerate(record["test_ood"]):
        file_items = [old_item[i] for _, i in sets[f"test_ood_{k + 1}"]]
        counts = np.bincount(group[file_items], minlength=10)
        assert counts.tolist() == entry["drawn"]
        assert np.abs(counts - np.array(entry["target"])).max() <= 0.5 + 1e-4
    md = (out / "SPLIT.md").read_text()
    assert "--seed=2" in md and "| test_ood_3.txt | 2 |" in md


def test_cli_output_evaluates(tmp_path):
    from advjax import evaluation

    users, items = _zipf_pool(n_users=120, n_items=40, n_pairs=2_500)
    _write_split(tmp_path / "src", users, items)
    out = tmp_path / "shifted"
    proc = _run(
        f"--split_dir={tmp_path / 'src'}", "--groups=5", "--test_share=0.05", f"--out={out}"
    )
    assert proc.returncode == 0, proc.stderr
    split = load_split_dir(out, warn=lambda line: None)
    evaluators = evaluation.build_evaluators(split)
    assert list(evaluators) == ["valid", "test_id", "test_ood_1", "test_ood_2", "test_ood_3"]
    rng = np.random.default_rng(0)
    user_emb = rng.normal(size=(split.n_users, 8)).astype(np.float32)
    item_emb = rng.normal(size=(split.n_items, 8)).astype(np.float32)
    for name, evaluator in evaluators.items():
        metrics = evaluator.evaluate(TrainedModel(user_emb, item_emb))
        assert 0 <= metrics["recall@20"] <= 1, name


def test_cli_pool_all_and_errors(tmp_path):
    users, items = _zipf_pool(n_users=120, n_items=40, n_pairs=2_500)
    src = tmp_path / "src"
    _write_split(src, users[:2000], items[:2000])
    (src / "test.txt").write_text(interactions.adjacency_text(users[2000:], items[2000:]))
    out = tmp_path / "o"
    proc = _run(
        f"--split_dir={src}", "--groups=5", "--test_share=0.05", "--pool=all", f"--out={out}"
    )
    assert proc.returncode == 0, proc.stderr
    split = load_split_dir(out, warn=lambda line: None)
    total = split.train.nnz + split.valid.nnz + sum(t.nnz for t in split.tests.values())
    assert total == 2500
    proc = _run(f"--split_dir={src}", "--groups=5", "--test_share=0.4", f"--out={tmp_path / 'x'}")
    assert proc.returncode == 1 and proc.stderr.startswith("error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _run(f"--split_dir={tmp_path / 'nowhere'}", f"--out={tmp_path / 'x'}")
    assert proc.returncode == 1 and "no such split directory" in proc.stderr
    proc = _run(f"--split_dir={src}", "--gammas=a,b", f"--out={tmp_path / 'x'}")
    assert proc.returncode == 1 and "--gammas must be numbers" in proc.stderr
    assert not (tmp_path / "x").exists()
