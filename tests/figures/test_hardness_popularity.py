"""hardness_popularity: on tiny trained runs, the CSV's group means are recomputed by
hand from the restored adversary (hardness logits <a_u, b_j>, softmax, items ranked by
training degree into 10 groups of 4), the p of every row sums to 1, the groups' means
weighted by their negatives give 1/N, and the PNG decodes."""

import dataclasses
import math

import numpy as np
import pytest

from advjax.train.finished import load_finished_run
from experiments.analyze import draw
from experiments.figures import hardness_popularity
from experiments.figures.base import read_csv
from experiments.figures.strategies import strategy_cells
from tests.figures.records import expected_size, png_size
from tests.figures.trained import N_ITEMS, N_NEG, read_split_file


def _by_hand(ctx, seed: int, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean p [10], negatives [10]) of one seed's sample, from its adversary's tables."""
    finished = load_finished_run(ctx.workdir(strategy_cells(ctx)[3], seed))
    adv = {k: np.asarray(v, np.float64) for k, v in finished.state.adv_params.items()}
    users = np.asarray(finished.run.sample.users)
    negs = np.asarray(finished.run.sample.negs)
    logits = np.einsum("sd,snd->sn", adv["user"][users], adv["item"][negs])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    mean, count = np.zeros(10), np.zeros(10, np.int64)
    for group in range(10):
        inside = groups[negs] == group
        count[group] = inside.sum()
        mean[group] = p[inside].mean() if count[group] else np.nan
    # Every row's p sums to 1 over N negatives: the overall mean is exactly 1/N.
    assert np.nansum(mean * count) / count.sum() == pytest.approx(1 / N_NEG, rel=1e-9)
    return mean, count


def _groups_by_hand(ctx) -> tuple[np.ndarray, np.ndarray]:
    degree = np.zeros(N_ITEMS, np.int64)
    for items in read_split_file(ctx, "train").values():
        degree[items] += 1
    order = sorted(range(N_ITEMS), key=lambda item: (degree[item], item))
    groups = np.empty(N_ITEMS, np.int64)
    for rank, item in enumerate(order):
        groups[item] = rank // 4  # 40 items, 10 groups of 4
    return degree, groups


def test_group_means_by_hand_over_two_seeds_and_the_png(tiny_runs, tmp_path):
    ctx = tiny_runs
    stem = draw(hardness_popularity.FIGURE, ctx, str(tmp_path / "out"), "analyze")
    rows = read_csv(stem + ".csv")
    assert list(rows[0]) == ["group", "degree_min", "degree_max", "items", "mean_p", "se",
                             "seeds", "negatives", "uniform"]  # fmt: skip
    assert [int(r["group"]) for r in rows] == list(range(10))

    degree, groups = _groups_by_hand(ctx)
    per_seed = [_by_hand(ctx, seed, groups) for seed in ctx.seeds]
    means = np.stack([m for m, _ in per_seed])
    counts = np.stack([c for _, c in per_seed])
    for group, row in enumerate(rows):
        members = degree[groups == group]
        assert (int(row["degree_min"]), int(row["degree_max"])) == (members.min(), members.max())
        assert int(row["items"]) == 4
        values = means[:, group][~np.isnan(means[:, group])]
        assert int(row["seeds"]) == len(values)
        assert int(row["negatives"]) == counts[:, group].sum()
        assert float(row["uniform"]) == 1 / N_NEG
        if len(values):
            assert float(row["mean_p"]) == pytest.approx(values.mean(), rel=1e-5)
        if len(values) > 1:
            se = np.std(values, ddof=1) / math.sqrt(len(values))
            assert float(row["se"]) == pytest.approx(se, rel=1e-4, abs=1e-9)
    # The adversary trained: its weighting is not uniform.
    assert np.nanmax(np.abs(means - 1 / N_NEG)) > 1e-3
    assert png_size(stem + ".png") == expected_size(6.4, 4.0)


def test_one_seed_weighted_by_negatives_gives_uniform(tiny_runs):
    one = dataclasses.replace(tiny_runs, seeds=(2,))
    rows = hardness_popularity.FIGURE.rows(one)
    assert all(math.isnan(r["se"]) for r in rows)
    total = sum(r["negatives"] for r in rows)
    weighted = sum(r["mean_p"] * r["negatives"] for r in rows if r["negatives"])
    assert total == len(load_finished_run(one.workdir(strategy_cells(one)[3], 2))
                         .run.sample.users) * N_NEG  # fmt: skip
    assert weighted / total == pytest.approx(1 / N_NEG, rel=1e-6)
