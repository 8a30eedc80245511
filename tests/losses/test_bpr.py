"""Numerical tests of advjax.losses.bpr."""

import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from advjax.losses import bpr

BATCH, N_NEG = 32, 16

# Compiled once per shape and dtype; eager use is covered by the jit test.
bpr_jit = jax.jit(bpr)
bpr_grads = jax.jit(jax.grad(lambda p, n: bpr(p, n).sum(), argnums=(0, 1)))


def reference_bpr(pos, neg):
    """Float64 NumPy BPR: mean_j log(1 + e^{neg_j - pos}), overflow-free via logaddexp."""
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    return np.logaddexp(0.0, neg - pos[:, None]).mean(axis=1)


def reference_sigmoid(x):
    x = np.asarray(x, np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def random_scores(seed, batch=BATCH, n_neg=N_NEG, scale=3.0):
    rng = np.random.default_rng(seed)
    pos = (scale * rng.standard_normal(batch)).astype(np.float32)
    neg = (scale * rng.standard_normal((batch, n_neg))).astype(np.float32)
    return pos, neg


def test_hand_computed_values():
    # Equal scores: -log(1/2) = log 2. Gap 1 in favour of the positive: log(1 + e^{-1}).
    # Row 2 averages log 2 and log(1 + e^{1}) over two negatives.
    pos = jnp.array([0.0, 1.0, 0.0])
    neg = jnp.array([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    expected = [math.log(2.0), math.log1p(math.exp(-1.0)), (math.log(2.0) + math.log1p(math.e)) / 2]
    np.testing.assert_allclose(bpr_jit(pos, neg), expected, rtol=1e-6)


def test_single_negative_is_minus_log_sigmoid():
    pos, neg = random_scores(0, n_neg=1)
    expected = -np.log(reference_sigmoid(pos - neg[:, 0]))
    np.testing.assert_allclose(bpr_jit(pos, neg), expected, rtol=1e-5, atol=1e-7)


def test_is_mean_of_single_negative_losses():
    pos, neg = random_scores(1)
    per_negative = np.stack([bpr_jit(pos, neg[:, j : j + 1]) for j in range(N_NEG)], axis=1)
    np.testing.assert_allclose(bpr_jit(pos, neg), per_negative.mean(axis=1), rtol=1e-5)


@pytest.mark.parametrize("seed", [2, 3])
def test_matches_float64_reference_float32(seed):
    pos, neg = random_scores(seed)
    loss = bpr_jit(pos, neg)
    assert loss.shape == (BATCH,)
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(loss, reference_bpr(pos, neg), rtol=1e-5, atol=1e-7)


def test_matches_float64_reference_x64():
    pos, neg = (x.astype(np.float64) for x in random_scores(4))
    with jax.enable_x64(True):
        loss = bpr_jit(pos, neg)
        assert loss.dtype == jnp.float64
    np.testing.assert_allclose(loss, reference_bpr(pos, neg), rtol=1e-13, atol=1e-15)


def test_check_grads():
    pos, neg = (x.astype(np.float64) for x in random_scores(5))
    with jax.enable_x64(True):
        check_grads(bpr_jit, (pos, neg), order=1, modes=("rev",))


def test_gradients_match_closed_form():
    # d/d neg_j = sigmoid(neg_j - pos) / N; d/d pos = -sum_j of those.
    pos, neg = (x.astype(np.float64) for x in random_scores(6))
    with jax.enable_x64(True):
        grad_pos, grad_neg = bpr_grads(pos, neg)
    expected_neg = reference_sigmoid(neg - pos[:, None]) / N_NEG
    np.testing.assert_allclose(grad_neg, expected_neg, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(grad_pos, -expected_neg.sum(axis=1), rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("gap", [30.0, 100.0, 1e4])
def test_finite_and_accurate_at_extreme_gaps_float32(gap):
    # A positive far ahead: loss ~ e^{-gap}, tiny but exact, not rounded to garbage.
    # Far behind: loss ~ gap and gradient -1 (no 1e-10 floor killing it).
    pos = np.array([gap, -gap], np.float32)
    neg = np.zeros((2, 3), np.float32)
    loss = bpr_jit(pos, neg)
    grad_pos, grad_neg = bpr_grads(pos, neg)
    chex.assert_tree_all_finite((loss, grad_pos, grad_neg))
    # atol: e^{-100} is subnormal in float32 and XLA may flush it to 0.
    np.testing.assert_allclose(loss, reference_bpr(pos, neg), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(grad_pos[1], -1.0, rtol=1e-6)
    assert loss[0] >= 0.0


def test_loss_decreases_with_the_gap():
    neg = np.zeros((BATCH, N_NEG), np.float32)
    pos = np.linspace(-5.0, 5.0, BATCH, dtype=np.float32)
    assert np.all(np.diff(np.asarray(bpr_jit(pos, neg))) < 0.0)


def test_integer_inputs_promote_to_float():
    loss = bpr_jit(np.array([0, 0]), np.array([[0], [0]]))
    assert jnp.issubdtype(loss.dtype, jnp.floating)
    np.testing.assert_allclose(loss, [math.log(2.0)] * 2, rtol=1e-6)


def test_jit_matches_eager_and_traces_once():
    pos, neg = random_scores(7)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def jitted(p, n):
        return bpr(p, n)

    chex.clear_trace_counter()
    np.testing.assert_allclose(jitted(pos, neg), bpr(pos, neg), rtol=1e-6)
    jitted(pos + 1.0, neg - 1.0)


@pytest.mark.parametrize(
    ("pos_shape", "neg_shape"),
    [((3,), (4, 5)), ((3, 1), (3, 5)), ((3,), (3,)), ((3,), (3, 0))],
)
def test_bad_shapes_raise_naming_both(pos_shape, neg_shape):
    pattern = re.escape(f"pos_logits.shape={pos_shape}") + ".*" + re.escape(f"={neg_shape}")
    with pytest.raises(ValueError, match=pattern):
        bpr(np.zeros(pos_shape), np.zeros(neg_shape))
