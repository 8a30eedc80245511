"""Numerical tests of advjax.losses.ccl (SimpleX's cosine contrastive loss)."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from advjax.losses import ccl

BATCH, N_NEG = 32, 64
MARGIN, NEG_WEIGHT = 0.4, 2.0  # the public code's default margin; a non-unit weight

# Compiled once per shape and dtype (margin and neg_weight are traced, so every value
# shares a program); eager use is covered by the jit test.
ccl_jit = jax.jit(ccl)
ccl_grads = jax.jit(
    jax.grad(lambda p, n, m, w: ccl(p, n, margin=m, neg_weight=w).sum(), argnums=(0, 1))
)


def reference_ccl(pos, neg, margin, neg_weight):
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    return (1.0 - pos) + neg_weight * np.maximum(neg - margin, 0.0).mean(axis=1)


def random_cosines(seed, batch=BATCH, n_neg=N_NEG):
    """float32 cosines uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-1.0, 1.0, batch).astype(np.float32)
    neg = rng.uniform(-1.0, 1.0, (batch, n_neg)).astype(np.float32)
    return pos, neg


def test_hand_computed_value():
    # 1 - 0.9 + 2 * mean(relu([0.6, 0.3, -1.0] - 0.4)) = 0.1 + 2 * 0.2 / 3.
    loss = ccl_jit(jnp.array([0.9]), jnp.array([[0.6, 0.3, -1.0]]), margin=0.4, neg_weight=2.0)
    np.testing.assert_allclose(loss, [0.1 + 0.4 / 3.0], rtol=1e-6)


@pytest.mark.parametrize(("margin", "neg_weight"), [(MARGIN, NEG_WEIGHT), (0.0, 1.0), (-0.3, 0.5)])
def test_matches_float64_reference_float32(margin, neg_weight):
    pos, neg = random_cosines(0)
    loss = ccl_jit(pos, neg, margin=margin, neg_weight=neg_weight)
    assert loss.shape == (BATCH,)
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(
        loss, reference_ccl(pos, neg, margin, neg_weight), rtol=1e-6, atol=1e-6
    )


def test_matches_float64_reference_x64():
    pos, neg = (x.astype(np.float64) for x in random_cosines(1))
    with jax.enable_x64(True):
        loss = ccl_jit(pos, neg, margin=MARGIN, neg_weight=NEG_WEIGHT)
        assert loss.dtype == jnp.float64
    expected = reference_ccl(pos, neg, MARGIN, NEG_WEIGHT)
    np.testing.assert_allclose(loss, expected, rtol=1e-14, atol=1e-15)


def test_zero_neg_weight_gives_one_minus_pos():
    pos, neg = random_cosines(2)
    loss = ccl_jit(pos, neg, margin=MARGIN, neg_weight=0.0)
    np.testing.assert_array_equal(loss, 1.0 - pos)


def test_small_neg_weight_tends_to_one_minus_pos():
    pos, neg = random_cosines(3)
    gaps = [
        np.max(np.abs(ccl_jit(pos, neg, margin=0.0, neg_weight=w) - (1.0 - pos)))
        for w in (1.0, 1e-2, 1e-4)
    ]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-4


@pytest.mark.parametrize("margin", [1.0, 1.5])
def test_margin_at_least_one_drops_the_negative_term(margin):
    pos, neg = random_cosines(4)
    neg[:, 0] = 1.0  # even a negative at cosine 1 costs nothing
    loss = ccl_jit(pos, neg, margin=margin, neg_weight=NEG_WEIGHT)
    np.testing.assert_array_equal(loss, 1.0 - pos)
    _, grad_neg = ccl_grads(pos, neg, margin, NEG_WEIGHT)
    np.testing.assert_array_equal(grad_neg, np.zeros_like(neg))


def test_negatives_below_margin_cost_nothing():
    pos, _ = random_cosines(5)
    neg = np.full((BATCH, N_NEG), MARGIN - 0.05, np.float32)
    np.testing.assert_allclose(
        ccl_jit(pos, neg, margin=MARGIN, neg_weight=NEG_WEIGHT), 1.0 - pos, rtol=1e-7
    )


def test_check_grads_away_from_the_kink():
    # Keep every negative at least 0.05 from the margin: relu has a kink there.
    rng = np.random.default_rng(6)
    pos = rng.uniform(-1.0, 1.0, BATCH)
    side = rng.choice([-1.0, 1.0], size=(BATCH, N_NEG))
    neg = np.clip(MARGIN + side * rng.uniform(0.05, 0.6, (BATCH, N_NEG)), -1.0, 1.0)
    with jax.enable_x64(True):
        check_grads(
            lambda p, n: ccl_jit(p, n, margin=MARGIN, neg_weight=NEG_WEIGHT),
            (pos, neg),
            order=1,
            modes=("rev",),
        )


def test_gradients_match_closed_form():
    # d/d pos = -1; d/d neg_j = w / N where neg_j > m, else 0.
    pos, neg = (x.astype(np.float64) for x in random_cosines(7))
    with jax.enable_x64(True):
        grad_pos, grad_neg = ccl_grads(pos, neg, MARGIN, NEG_WEIGHT)
    np.testing.assert_array_equal(grad_pos, -np.ones(BATCH))
    np.testing.assert_allclose(grad_neg, NEG_WEIGHT / N_NEG * (neg > MARGIN), rtol=1e-15)


def test_finite_at_cosines_of_plus_minus_one():
    pos = np.array([1.0, -1.0], np.float32)
    neg = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)
    loss = ccl_jit(pos, neg, margin=MARGIN, neg_weight=NEG_WEIGHT)
    chex.assert_tree_all_finite((loss, ccl_grads(pos, neg, MARGIN, NEG_WEIGHT)))
    np.testing.assert_allclose(loss, reference_ccl(pos, neg, MARGIN, NEG_WEIGHT), rtol=1e-6)


def test_jit_matches_eager_and_traces_once():
    pos, neg = random_cosines(8)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def jitted(p, n, m, w):
        return ccl(p, n, margin=m, neg_weight=w)

    chex.clear_trace_counter()
    eager = ccl(pos, neg, margin=MARGIN, neg_weight=NEG_WEIGHT)
    np.testing.assert_allclose(jitted(pos, neg, MARGIN, NEG_WEIGHT), eager, rtol=1e-6)
    jitted(pos, neg, 0.9, 0.5)  # new (traced) hyperparameters: no retrace


@pytest.mark.parametrize(
    ("pos_shape", "neg_shape"),
    [((3,), (4, 5)), ((3, 1), (3, 5)), ((3,), (3,)), ((3,), (3, 0))],
)
def test_bad_shapes_raise_naming_both(pos_shape, neg_shape):
    pattern = re.escape(f"pos_cos.shape={pos_shape}") + ".*" + re.escape(f"={neg_shape}")
    with pytest.raises(ValueError, match=pattern):
        ccl(np.zeros(pos_shape), np.zeros(neg_shape), margin=MARGIN, neg_weight=1.0)


@pytest.mark.parametrize("neg_weight", [-1.0, float("nan")])
def test_negative_neg_weight_raises(neg_weight):
    with pytest.raises(ValueError, match="neg_weight"):
        ccl(np.zeros(2), np.zeros((2, 3)), margin=MARGIN, neg_weight=neg_weight)
