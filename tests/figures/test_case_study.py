"""case_study: on tiny trained runs, the two users' rows are recomputed by hand
(false negatives from the split's test files, delta from the restored adversary's
tables, cosines from the restored embeddings, ranks by argsort over the items the
user did not train on), and the PNG decodes; the users' draw is fixed by its seed."""

import math

import numpy as np
import pytest

from advjax.train.finished import load_finished_run
from experiments.analyze import draw
from experiments.figures import case_study
from experiments.figures.base import read_csv
from experiments.figures.strategies import strategy_cells
from tests.figures.records import expected_size, png_size
from tests.figures.trained import N_NEG, read_split_file


def _unit(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _cos_and_rank(finished, user: int, negs: np.ndarray, train: list[int]):
    model = finished.run.model(finished.state.cf_params)
    user_emb, item_emb = model.users, model.items
    scores = _unit(item_emb) @ _unit(user_emb)[user]
    candidates = np.array([i for i in range(len(scores)) if i not in train])
    ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
    return scores[negs], np.array([1 + int(np.flatnonzero(ranked == j)[0]) for j in negs])


def test_rows_by_hand_and_the_png(tiny_runs, tmp_path):
    ctx = tiny_runs
    stem = draw(case_study.FIGURE, ctx, str(tmp_path / "out"), "analyze")
    rows = read_csv(stem + ".csv")
    assert list(rows[0]) == ["user", "sample_row", "pos", "negative", "false_negative",
                             "degree", "delta", "p", "cos_infonce", "cos_advinfonce",
                             "rank_infonce", "rank_advinfonce"]  # fmt: skip
    assert len(rows) == 2 * N_NEG

    infonce_cell, adv_cell = strategy_cells(ctx)[0], strategy_cells(ctx)[3]
    adv = load_finished_run(ctx.workdir(adv_cell, 1))
    infonce = load_finished_run(ctx.workdir(infonce_cell, 1))
    train = read_split_file(ctx, "train")
    test_id, test_ood = read_split_file(ctx, "test_id"), read_split_file(ctx, "test_ood")
    held_out = {u: set(test_id[u]) | set(test_ood[u]) for u in train}
    sample_users = np.asarray(adv.run.sample.users)
    sample_negs = np.asarray(adv.run.sample.negs)
    tables = {k: np.asarray(v, np.float64) for k, v in adv.state.adv_params.items()}

    users = list(dict.fromkeys(int(r["user"]) for r in rows))
    assert len(users) == 2
    for user in users:
        mine = [r for r in rows if int(r["user"]) == user]
        row = int(mine[0]["sample_row"])
        # The user's first sample row with a false negative.
        has_fn = [s for s in range(len(sample_users)) if sample_users[s] == user
                  and any(int(j) in held_out[user] for j in sample_negs[s])]  # fmt: skip
        assert row == has_fn[0]
        negs = sample_negs[row]
        assert [int(r["negative"]) for r in mine] == negs.tolist()
        assert [int(r["false_negative"]) for r in mine] == [int(j in held_out[user]) for j in negs]
        assert any(int(r["false_negative"]) for r in mine)
        assert all(int(r["pos"]) in train[user] for r in mine)

        logits = tables["user"][user] @ tables["item"][negs].T
        delta = math.log(N_NEG) + logits - np.log(np.sum(np.exp(logits)))
        np.testing.assert_allclose([float(r["delta"]) for r in mine], delta, atol=1e-5)
        p = np.array([float(r["p"]) for r in mine])
        assert p.sum() == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(p, np.exp(delta) / N_NEG, rtol=1e-5)

        for name, finished in (("infonce", infonce), ("advinfonce", adv)):
            cos, rank = _cos_and_rank(finished, user, negs, train[user])
            np.testing.assert_allclose([float(r[f"cos_{name}"]) for r in mine], cos, atol=1e-6)
            assert [int(r[f"rank_{name}"]) for r in mine] == rank.tolist()
    assert png_size(stem + ".png") == expected_size(2 * 5.0, 4.4)


def test_the_drawn_rows_follow_the_seed_and_the_false_negatives():
    users = np.array([5, 5, 3, 3, 8, 9, 9])
    false_negative = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0, 0], [0, 0], [0, 1]], bool)
    rows = case_study.case_rows_of(users, false_negative, n=2, seed=0)
    assert rows == case_study.case_rows_of(users, false_negative, n=2, seed=0)
    # Users 3, 5 and 9 have a false negative (8 has none); each at its first such row.
    first = {3: 2, 5: 1, 9: 6}
    assert len(rows) == 2 and all(r in first.values() for r in rows)
    assert sorted(case_study.case_rows_of(users, false_negative, n=5)) == [1, 2, 6]
    assert case_study.case_rows_of(users, np.zeros((7, 2), bool)) == []
