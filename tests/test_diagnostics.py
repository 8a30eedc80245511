"""SPEC §7's diagnostics against float64 NumPy references and on a real run."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax import diagnostics
from advjax.data import load_dataset
from advjax.sampling import make_train_pairs
from advjax.train import TrainConfig, train_and_evaluate


def _unit_rows(rng, n, d=8):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_alignment_and_uniformity_match_float64_references():
    rng = np.random.default_rng(0)
    u, i = _unit_rows(rng, 50), _unit_rows(rng, 50)
    align = float(diagnostics.alignment(jnp.asarray(u, jnp.float32), jnp.asarray(i, jnp.float32)))
    assert align == pytest.approx(np.mean(np.sum((u - i) ** 2, axis=1)), rel=1e-5)
    x = _unit_rows(rng, 40)
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    pairs = ~np.eye(40, dtype=bool)
    expected = np.log(np.mean(np.exp(-2 * sq[pairs])))
    got = float(diagnostics.uniformity(jnp.asarray(x, jnp.float32)))
    assert got == pytest.approx(expected, rel=1e-5)
    # Identical points are the least uniform: log e^0 = 0.
    same = jnp.ones((5, 8)) / jnp.sqrt(8.0)
    assert float(diagnostics.uniformity(same)) == pytest.approx(0.0, abs=1e-6)


def _sample(neg_popularity, false_negative):
    s, n = neg_popularity.shape
    zeros = jnp.zeros((s,), jnp.int32)
    return diagnostics.Sample(
        users=zeros, pos=zeros, negs=jnp.zeros((s, n), jnp.int32), user_set=zeros,
        items=zeros, neg_popularity=jnp.asarray(neg_popularity, jnp.float32),
        false_negative=jnp.asarray(false_negative),
    )  # fmt: skip


def test_hardness_stats_match_float64_references():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 5))
    popularity = rng.uniform(size=(6, 5))
    false_negative = np.zeros((6, 5), bool)
    false_negative[0, :3] = True
    false_negative[4, 1] = True
    stats = diagnostics.hardness_stats(
        jnp.asarray(logits, jnp.float32), _sample(popularity, false_negative)
    )
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = np.log(5 * p)
    assert float(stats["kl_u_p"]) == pytest.approx(np.mean(np.mean(-np.log(5 * p), 1)), rel=1e-5)
    assert float(stats["kl_p_u"]) == pytest.approx(np.mean(np.sum(p * np.log(5 * p), 1)), rel=1e-5)
    assert float(stats["delta_std"]) == pytest.approx(delta.std(), rel=1e-5)
    corr = np.corrcoef(delta.ravel(), popularity.ravel())[0, 1]
    assert float(stats["pop_corr"]) == pytest.approx(corr, rel=1e-4)
    expected_fn = (delta[false_negative] < 0).mean()
    assert float(stats["fn_rate"]) == pytest.approx(expected_fn)


def test_uniform_hardness_has_no_divergence_and_no_false_negative_rate_without_any():
    stats = diagnostics.hardness_stats(
        jnp.zeros((3, 4)), _sample(np.ones((3, 4)), np.zeros((3, 4), bool))
    )
    assert float(stats["kl_u_p"]) == pytest.approx(0.0, abs=1e-7)
    assert float(stats["kl_p_u"]) == pytest.approx(0.0, abs=1e-7)
    assert float(stats["delta_std"]) == pytest.approx(0.0, abs=1e-7)
    assert np.isnan(float(stats["fn_rate"]))


def test_sample_marks_exactly_the_held_out_test_positives():
    data = load_dataset("coat")
    sample = diagnostics.make_sample(
        data, make_train_pairs(data.train), jax.random.key(0), n_neg=16
    )
    users, negs = np.asarray(sample.users), np.asarray(sample.negs)
    held_out = set()
    for split in data.tests.values():
        for u in range(split.n_users):
            held_out |= {(u, int(j)) for j in split.items[split.indptr[u] : split.indptr[u + 1]]}
    expected = np.array(
        [[(int(u), int(j)) in held_out for j in row] for u, row in zip(users, negs, strict=True)]
    )
    np.testing.assert_array_equal(np.asarray(sample.false_negative), expected)
    assert expected.any()
    for u, row in zip(users, negs, strict=True):
        train_items = data.train.items[data.train.indptr[u] : data.train.indptr[u + 1]]
        assert not np.isin(row, train_items).any()
    assert len(set(np.asarray(sample.user_set).tolist())) == len(np.asarray(sample.user_set))
    degree = np.bincount(data.train.items, minlength=data.n_items)
    np.testing.assert_allclose(sample.neg_popularity, np.log1p(degree[negs]), rtol=1e-6)


@pytest.mark.parametrize("loss, hardness", [("adv_infonce", True), ("infonce", False)])
def test_runs_log_the_diagnostics_at_each_validation(tmp_path, loss, hardness):
    cfg = TrainConfig(loss=loss, lr=1e-2, max_epochs=10, eval_every=5, t_adv=5, e_adv=2)
    train_and_evaluate(cfg, str(tmp_path), data=load_dataset("coat"), log=lambda s: None)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    validated = [r for r in records if "valid/recall@20" in r and "final" not in r]
    assert [r["epoch"] for r in validated] == [5, 10]
    for record in validated:
        assert 0 < record["repr/align"] < 4 and record["repr/uniform"] < 0
        assert ("hardness/kl_u_p" in record) == hardness
        if hardness:
            assert record["hardness/kl_u_p"] > 0 and record["hardness/kl_p_u"] > 0
            assert 0 <= record["hardness/fn_rate"] <= 1
