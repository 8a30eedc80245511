"""Numerical tests of advjax.losses.ultragcn: UltraGCN's constraint loss L_L (named apart
from tests/models/test_ultragcn.py: test files share one namespace)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from advjax.errors import ConfigError
from advjax.losses import constraint_loss, degree_weights
from advjax.losses.spec import LossInputs
from advjax.losses.ultragcn import LOSS
from advjax.train import TrainConfig

BATCH, N_NEG = 16, 8
WEIGHTS = dict(w1=1e-3, w2=1.0, w3=0.2, w4=0.7, negative_weight=5.0)

constraint_jit = jax.jit(constraint_loss, static_argnames=tuple(WEIGHTS))


def reference_constraint(pos, neg, pos_beta, neg_beta, *, w1, w2, w3, w4, negative_weight):
    """Float64 NumPy L_L: weighted -log sigmoid(s) for the positive, -log(1 - sigmoid(s))
    for each negative (logaddexp keeps both finite)."""
    pos, neg, pos_beta, neg_beta = (
        np.asarray(x, np.float64) for x in (pos, neg, pos_beta, neg_beta)
    )
    pos_term = (w1 + w2 * pos_beta) * np.logaddexp(0.0, -pos)
    neg_term = ((w3 + w4 * neg_beta) * np.logaddexp(0.0, neg)).mean(axis=1)
    return pos_term + negative_weight * neg_term


def random_inputs(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (
        (3 * rng.standard_normal(BATCH)).astype(dtype),
        (3 * rng.standard_normal((BATCH, N_NEG))).astype(dtype),
        rng.uniform(0.05, 1.5, BATCH).astype(dtype),
        rng.uniform(0.05, 1.5, (BATCH, N_NEG)).astype(dtype),
    )


def test_degree_weights_are_betas_factors_in_float64():
    d_user = np.array([1, 2, 5, 0])
    d_item = np.array([0, 3, 1])
    beta_user, beta_item = degree_weights(d_user, d_item)
    for u in range(3):
        for i in range(3):
            want = (1 / d_user[u]) * math.sqrt((d_user[u] + 1) / (d_item[i] + 1))
            assert beta_user[u] * beta_item[i] == pytest.approx(want, rel=1e-15)
    assert beta_user[3] == 0.0  # a user without training items: guarded, not inf
    assert beta_user.dtype == beta_item.dtype == np.float64


def test_hand_computed_value():
    # s = 0 everywhere: each BCE term is log 2.
    loss = constraint_jit(
        jnp.zeros(2), jnp.zeros((2, 3)), jnp.array([0.5, 1.0]), jnp.full((2, 3), 0.25), **WEIGHTS
    )
    w = WEIGHTS
    want = [
        (w["w1"] + w["w2"] * b) * math.log(2)
        + w["negative_weight"] * (w["w3"] + w["w4"] * 0.25) * math.log(2)
        for b in (0.5, 1.0)
    ]
    np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_matches_float64_reference():
    inputs = random_inputs(0)
    np.testing.assert_allclose(
        constraint_jit(*inputs, **WEIGHTS), reference_constraint(*inputs, **WEIGHTS), rtol=1e-5
    )
    inputs = random_inputs(1, np.float64)
    with jax.enable_x64(True):
        loss = constraint_jit(*inputs, **WEIGHTS)
        assert loss.dtype == jnp.float64
    np.testing.assert_allclose(loss, reference_constraint(*inputs, **WEIGHTS), rtol=1e-13)


def test_check_grads_and_finite_at_extreme_scores():
    inputs = random_inputs(2, np.float64)
    with jax.enable_x64(True):
        check_grads(lambda *x: constraint_loss(*x, **WEIGHTS), inputs, order=1, modes=["rev"])
    big = [x * 1e4 if i < 2 else x for i, x in enumerate(random_inputs(3))]
    loss, grads = jax.value_and_grad(lambda p, n: constraint_loss(p, n, *big[2:], **WEIGHTS).sum(),
                                     argnums=(0, 1))(*big[:2])  # fmt: skip
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads)


def test_any_weights_work_including_w2_zero():
    # The public code leaves its positive weight undefined when w2 = 0.
    pos, neg, pos_beta, neg_beta = random_inputs(4)
    weights = dict(w1=0.5, w2=0.0, w3=0.0, w4=0.0, negative_weight=0.0)
    np.testing.assert_allclose(
        constraint_jit(pos, neg, pos_beta, neg_beta, **weights),
        0.5 * np.logaddexp(0.0, -pos.astype(np.float64)),
        rtol=1e-6,
    )


def test_shapes_are_checked():
    pos, neg, pos_beta, neg_beta = random_inputs(5)
    with pytest.raises(ValueError, match=r"neg_beta must have the same shape as neg_logits"):
        constraint_loss(pos, neg, pos_beta, neg_beta[:, :2], **WEIGHTS)
    with pytest.raises(ValueError, match=r"pos_logits must have shape \[batch\]"):
        constraint_loss(neg, neg, neg_beta, neg_beta, **WEIGHTS)


def _inputs_on_tables(params, loss_data, users, pos, negs) -> LossInputs:
    """LossInputs whose cosine fields are deliberately wrong: the loss must not read them."""
    nan = jnp.full(negs.shape, jnp.nan)
    return LossInputs(
        pos_cos=nan[:, 0], neg_cos=nan, user_vecs=None, item_table=None, users=users, pos=pos,
        negs=negs, cf_params=params, adv_params={}, loss_state={}, loss_data=loss_data,
        epoch=jnp.int32(0), key=None,
    )  # fmt: skip


def test_spec_value_and_gradient_on_raw_dot_products_against_float64():
    """The spec reads the layer-0 tables' raw products and the prepared betas; its batch
    mean and gradient with respect to the tables match float64 NumPy."""
    rng = np.random.default_rng(6)
    n_users, n_items, dim = 5, 7, 4
    params = {
        "user": rng.standard_normal((n_users, dim)).astype(np.float32),
        "item": rng.standard_normal((n_items, dim)).astype(np.float32),
    }
    beta_user, beta_item = degree_weights(rng.integers(1, 6, n_users), rng.integers(0, 6, n_items))
    loss_data = {
        "beta_user": beta_user.astype(np.float32),
        "beta_item": beta_item.astype(np.float32),
    }
    users = np.array([0, 1, 3, 3, 4])
    pos = np.array([1, 2, 0, 6, 1])
    negs = rng.integers(0, n_items, (5, 3))
    cfg = TrainConfig(backbone="ultragcn", loss="ultragcn", ultragcn_w1=0.1, ultragcn_w2=0.9,
                      ultragcn_w3=0.3, ultragcn_w4=0.6, ultragcn_negative_weight=4.0)  # fmt: skip

    def mean_loss(tables):
        inputs = _inputs_on_tables(tables, loss_data, jnp.asarray(users), jnp.asarray(pos),
                                   jnp.asarray(negs))  # fmt: skip
        return jnp.mean(LOSS.value(cfg, inputs).per_sample)

    value, grads = jax.value_and_grad(mean_loss)(params)

    u = params["user"].astype(np.float64)
    e = params["item"].astype(np.float64)
    s_pos = np.sum(u[users] * e[pos], -1)
    s_neg = np.einsum("bd,bnd->bn", u[users], e[negs])
    w_pos = 0.1 + 0.9 * beta_user[users] * beta_item[pos]
    w_neg = 0.3 + 0.6 * beta_user[users][:, None] * beta_item[negs]
    per = w_pos * np.logaddexp(0, -s_pos) + 4.0 * (w_neg * np.logaddexp(0, s_neg)).mean(1)
    assert float(value) == pytest.approx(per.mean(), rel=1e-5)
    # d/ds softplus(-s) = -sigmoid(-s); d/ds softplus(s) = sigmoid(s).
    n = len(users)
    c_pos = -w_pos / (1 + np.exp(s_pos)) / n
    c_neg = 4.0 * w_neg / (1 + np.exp(-s_neg)) / negs.shape[1] / n
    g_user, g_item = np.zeros_like(u), np.zeros_like(e)
    np.add.at(g_user, users, c_pos[:, None] * e[pos] + np.einsum("bn,bnd->bd", c_neg, e[negs]))
    np.add.at(g_item, pos, c_pos[:, None] * u[users])
    np.add.at(g_item, negs, c_neg[:, :, None] * u[users][:, None, :])
    np.testing.assert_allclose(grads["user"], g_user, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["item"], g_item, rtol=1e-4, atol=1e-6)


def test_refuses_backbones_that_score_by_cosine_and_bad_weights():
    only = r"--loss=ultragcn trains raw dot products, which only --backbone=ultragcn scores by; "
    with pytest.raises(ConfigError, match=only + r"--backbone=mf scores by cosine"):
        TrainConfig(loss="ultragcn")
    with pytest.raises(ConfigError, match=r"--backbone=lightgcn scores by cosine"):
        TrainConfig(loss="ultragcn", backbone="lightgcn", n_layers=2)
    with pytest.raises(ConfigError, match=r"ultragcn_w2 must be >= 0, got -1"):
        TrainConfig(backbone="ultragcn", loss="ultragcn", ultragcn_w2=-1.0)
    with pytest.raises(ConfigError, match=r"ultragcn_negative_weight must be >= 0"):
        TrainConfig(backbone="ultragcn", loss="ultragcn", ultragcn_negative_weight=-3.0)
