"""benchmarks/peers.py's pure parts: implicit's ALS settings for an iALS objective (and,
where implicit is installed, one of its iterations against advjax's half-steps), a
peer's factors through advjax's evaluator against a hand computation on Coat, the fit
record, and the CLI's one-line errors."""

import math

import numpy as np
import pytest
from helpers import run_module

from advjax.data import load_dataset
from advjax.errors import ConfigError
from advjax.evaluation import build_evaluators
from advjax.train import TrainConfig
from benchmarks import peers


def test_implicit_als_settings_divide_advjax_objective_by_the_unobserved_weight():
    cfg = TrainConfig(
        backbone="ials", emb_dim=32, ials_alpha=9.0, ials_reg=100.0, ials_unobserved_weight=2.0,
        ials_solver="cg", ials_cg_steps=4,
    )  # fmt: skip
    # c = 1 + 9 = 10, w0 = 2, lam = 100: implicit's w0 is 1, so alpha = 10 / 2, reg = 100 / 2.
    assert peers.implicit_als_settings(cfg) == {
        "factors": 32, "alpha": 5.0, "regularization": 50.0, "use_cg": True, "cg_steps": 4,
    }  # fmt: skip
    plain = peers.implicit_als_settings(TrainConfig(backbone="ials"))
    assert plain["alpha"] == 2.0 and plain["regularization"] == 0.01 and not plain["use_cg"]
    with pytest.raises(ConfigError, match="frequency-scaled"):
        peers.implicit_als_settings(TrainConfig(backbone="ials", ials_reg_exponent=1.0))


def test_one_implicit_iteration_is_advjax_user_then_item_half_step():
    pytest.importorskip("implicit")
    import scipy.sparse
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from advjax.data import Interactions
    from advjax.models import ials
    from advjax.models.fitted import fit_data

    rng = np.random.default_rng(0)
    x = rng.random((12, 9)) < 0.35
    x[3] = False  # a user without pairs: a zero row in both
    indptr = np.concatenate([[0], np.cumsum(x.sum(1))]).astype(np.int64)
    items = np.nonzero(x)[1].astype(np.int32)
    cfg = TrainConfig(
        backbone="ials", emb_dim=4, ials_alpha=3.0, ials_reg=0.5, ials_unobserved_weight=2.0
    )
    w0 = (0.3 * rng.normal(size=(12, 4))).astype(np.float32)
    h0 = (0.3 * rng.normal(size=(9, 4))).astype(np.float32)

    settings = peers.implicit_als_settings(cfg)
    del settings["cg_steps"]
    matrix = scipy.sparse.csr_matrix((np.ones(len(items), np.float32), items, indptr), (12, 9))
    with threadpool_limits(1, "blas"):  # as implicit asks (it warns otherwise)
        model = AlternatingLeastSquares(**settings, iterations=1, num_threads=1)
        model.user_factors, model.item_factors = w0.copy(), h0.copy()
        model.fit(matrix, show_progress=False)

    data = fit_data(Interactions(indptr, items, "tiny"), 9)
    users = ials.solve_users(cfg, w0, h0, data)
    item_table = ials.solve_items(cfg, users, h0, data)
    np.testing.assert_allclose(model.user_factors, users, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.item_factors, item_table, rtol=1e-4, atol=1e-5)
    assert not model.user_factors[3].any()


def _hand_metrics(scores: np.ndarray, targets, excluded) -> tuple[float, float]:
    """SPEC §4 by hand: mean Recall@20 and NDCG@20 over the users with targets."""
    recalls, ndcgs = [], []
    for user, wanted in targets.items():
        row = scores[user].copy()
        row[list(excluded.get(user, set()) - wanted)] = -np.inf
        top = np.argsort(-row, kind="stable")[:20]
        ranks = [r for r, item in enumerate(top) if item in wanted]
        recalls.append(len(ranks) / len(wanted))
        dcg = sum(1 / math.log2(r + 2) for r in ranks)
        ndcgs.append(dcg / sum(1 / math.log2(r + 2) for r in range(min(len(wanted), 20))))
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def _pairs(interactions) -> dict[int, set[int]]:
    return {
        u: set(interactions.items[interactions.indptr[u] : interactions.indptr[u + 1]].tolist())
        for u in range(interactions.n_users)
        if interactions.indptr[u + 1] > interactions.indptr[u]
    }


def test_peer_factors_through_advjax_evaluator_match_a_hand_computation_on_coat():
    data = load_dataset("coat")
    rng = np.random.default_rng(7)
    users = rng.normal(size=(data.n_users, 8)).astype(np.float32)
    items = rng.normal(size=(data.n_items, 8)).astype(np.float32)
    got = peers.evaluate_factors(build_evaluators(data), users, items)

    scores = users.astype(np.float64) @ items.astype(np.float64).T  # "dot": no normalising
    train, valid = _pairs(data.train), _pairs(data.valid)
    test_ood, test_id = _pairs(data.tests["test_ood"]), _pairs(data.tests["test_id"])
    known = {u: train.get(u, set()) | valid.get(u, set()) | test_id.get(u, set())
             for u in range(data.n_users)}  # fmt: skip
    for name, targets, excluded in (("valid", valid, train), ("test_ood", test_ood, known)):
        recall, ndcg = _hand_metrics(scores, targets, excluded)
        assert got[name]["recall@20"] == pytest.approx(recall, abs=1e-9), name
        assert got[name]["ndcg@20"] == pytest.approx(ndcg, abs=1e-9), name


def test_fit_log_times_the_target_and_the_steady_iterations():
    log = peers.FitLog(target=0.5, patience=2, eval_every=2)
    for it, (seconds, score) in enumerate([(3.0, None), (1.0, 0.4), (1.5, None), (1.0, 0.6),
                                           (2.0, None), (1.0, 0.55)], start=1):  # fmt: skip
        log.trained(seconds)
        if score is not None:
            log.validated(it, {"recall@20": score})
    record = log.record()
    assert record["fit_s"] == 9.5 and record["first_iteration_s"] == 3.0
    assert record["iteration_s"] == 1.0  # the median of the five after the first
    assert record["to_target_s"] == 6.5 and record["to_target"]["iteration"] == 4
    assert record["best_iteration"] == 4 and record["valid_curve"][-1] == [6, 0.55]
    assert not log.stopping.stopped


@pytest.mark.parametrize(
    "args, message",
    [
        (["--systems=ials,nope"], "error: unknown system nope; choose from implicit_als"),
        (["--systems=ease", "--configs=nowhere"],
         "error: experiments/configs/nowhere_ease.flags: no such flagfile"),
        (["--systems=ease", "--data_dir=/nonexistent/split"],
         "error: --data_dir=/nonexistent/split: no such directory"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_1(args, message, tmp_path):
    proc = run_module("benchmarks.peers", *args, f"--json={tmp_path / 'out.json'}")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "out.json").exists()
