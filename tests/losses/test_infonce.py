"""Numerical tests of advjax.losses.infonce."""

import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from advjax.losses import infonce

TAU = 0.09  # the paper's temperature on Tencent: logits reach 1 / 0.09 ~ 11.
BATCH, N_NEG = 32, 64

# Compiled once per shape and dtype: eager dispatch compiles every primitive separately,
# which makes the suite several times slower. Eager use is covered by the jit test.
infonce_jit = jax.jit(infonce)
infonce_grads = jax.jit(jax.grad(lambda p, n: infonce(p, n).sum(), argnums=(0, 1)))


def reference_infonce(pos, neg):
    """Float64 NumPy InfoNCE: logsumexp over [pos, negs] with the row max shifted out."""
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    logits = np.concatenate([pos[:, None], neg], axis=1)
    top = logits.max(axis=1)
    lse = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return lse - pos


def reference_pos_weight(pos, neg):
    """Float64 softmax weight of the positive among [pos, negs]."""
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    return 1.0 / (1.0 + np.exp(neg - pos[:, None]).sum(axis=1))


def cosine_logits(rng, batch, n_neg, tau=TAU, dim=64):
    """Logits cos(u, i) / tau from random embeddings, as float32.

    The positive's item is the user vector plus noise, so the positives score high
    and the losses cover both easy and hard examples.
    """
    users = rng.standard_normal((batch, dim))
    pos_items = users + 0.5 * rng.standard_normal((batch, dim))
    neg_items = rng.standard_normal((batch, n_neg, dim))
    users /= np.linalg.norm(users, axis=-1, keepdims=True)
    pos_items /= np.linalg.norm(pos_items, axis=-1, keepdims=True)
    neg_items /= np.linalg.norm(neg_items, axis=-1, keepdims=True)
    pos = np.einsum("bd,bd->b", users, pos_items) / tau
    neg = np.einsum("bd,bnd->bn", users, neg_items) / tau
    return pos.astype(np.float32), neg.astype(np.float32)


def uniform_cosine_logits(rng, batch, n_neg, tau=TAU):
    """Logits with cosines uniform in [-1, 1]: the full range +-1/tau, as float32."""
    pos = rng.uniform(-1.0, 1.0, batch) / tau
    neg = rng.uniform(-1.0, 1.0, (batch, n_neg)) / tau
    return pos.astype(np.float32), neg.astype(np.float32)


def test_hand_computed_values():
    # Row 0: e^pos = 2, negatives 1 and 3 -> -log(2 / 6) = log 3.
    # Row 1: e^pos = 1, negatives 4 and 5 -> -log(1 / 10) = log 10.
    pos = jnp.array([math.log(2.0), 0.0])
    neg = jnp.array([[0.0, math.log(3.0)], [math.log(4.0), math.log(5.0)]])
    np.testing.assert_allclose(infonce_jit(pos, neg), [math.log(3.0), math.log(10.0)], rtol=1e-6)


def test_equal_logits_give_log_of_candidate_count():
    loss = infonce_jit(np.full(BATCH, 7.0, np.float32), np.full((BATCH, N_NEG), 7.0, np.float32))
    np.testing.assert_allclose(loss, np.full(BATCH, math.log(N_NEG + 1)), rtol=1e-6)


@pytest.mark.parametrize("make_logits", [cosine_logits, uniform_cosine_logits])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_float64_reference_float32(make_logits, seed):
    pos, neg = make_logits(np.random.default_rng(seed), batch=BATCH, n_neg=N_NEG)
    loss = infonce_jit(pos, neg)
    assert loss.shape == (BATCH,)
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(loss, reference_infonce(pos, neg), rtol=1e-5, atol=1e-6)


def test_matches_float64_reference_x64():
    pos, neg = uniform_cosine_logits(np.random.default_rng(2), batch=BATCH, n_neg=N_NEG)
    pos, neg = pos.astype(np.float64), neg.astype(np.float64)
    with jax.enable_x64(True):
        loss = infonce_jit(pos, neg)
        assert loss.dtype == jnp.float64
        np.testing.assert_allclose(loss, reference_infonce(pos, neg), rtol=1e-12, atol=1e-13)


def test_small_loss_keeps_relative_precision():
    # The positive dominates: loss = log(1 + 8 e^{-20}) ~ 1.6e-8. Subtracting pos from a
    # joint logsumexp would round it to 0 in float32.
    pos = np.full(BATCH, 20.0, np.float32)
    neg = np.zeros((BATCH, N_NEG), np.float32)
    expected = np.full(BATCH, math.log1p(N_NEG * math.exp(-20.0)))
    np.testing.assert_allclose(infonce_jit(pos, neg), expected, rtol=1e-5)


def test_check_grads():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        pos = rng.standard_normal(BATCH) * 3.0
        neg = rng.standard_normal((BATCH, N_NEG)) * 3.0
        check_grads(infonce_jit, (pos, neg), order=1, modes=("rev",))


def test_gradients_match_closed_form():
    # SPEC Eq. 19: d loss / d pos = -(1 - w_pos); d loss / d neg_j = softmax weight of j.
    pos, neg = uniform_cosine_logits(np.random.default_rng(4), batch=BATCH, n_neg=N_NEG)
    pos, neg = pos.astype(np.float64), neg.astype(np.float64)
    with jax.enable_x64(True):
        grad_pos, grad_neg = infonce_grads(pos, neg)
    w_pos = reference_pos_weight(pos, neg)
    w_neg = np.exp(neg - pos[:, None]) * w_pos[:, None]
    np.testing.assert_allclose(grad_pos, -(1.0 - w_pos), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad_neg, w_neg, rtol=1e-10, atol=1e-14)


def test_float32_gradients_match_float64():
    pos, neg = uniform_cosine_logits(np.random.default_rng(5), batch=BATCH, n_neg=N_NEG)
    grad_pos, grad_neg = infonce_grads(pos, neg)
    w_pos = reference_pos_weight(pos, neg)
    np.testing.assert_allclose(grad_pos, -(1.0 - w_pos), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad_neg, np.exp(neg - pos[:, None]) * w_pos[:, None], atol=1e-6)


@pytest.mark.parametrize("scale", [1.0 / TAU, 100.0])
def test_finite_at_extreme_logits_float32(scale):
    rng = np.random.default_rng(6)
    signs = rng.choice([-1.0, 1.0], size=(BATCH, N_NEG + 1)).astype(np.float32)
    pos, neg = scale * signs[:, 0], scale * signs[:, 1:]
    pos[0], neg[0] = scale, -scale  # the positive wins by 2 * scale
    pos[1], neg[1] = -scale, scale  # every negative beats the positive
    per_example = infonce_jit(pos, neg)
    chex.assert_tree_all_finite((per_example, infonce_grads(pos, neg)))
    assert np.all(np.asarray(per_example) >= 0.0)
    np.testing.assert_allclose(per_example, reference_infonce(pos, neg), rtol=1e-5, atol=1e-6)


def test_loss_is_nonnegative():
    pos, neg = uniform_cosine_logits(np.random.default_rng(7), batch=BATCH, n_neg=N_NEG)
    assert np.all(np.asarray(infonce_jit(pos, neg)) >= 0.0)


def test_integer_inputs_promote_to_float():
    loss = infonce_jit(np.array([0, 1]), np.array([[0, 0], [1, 1]]))
    assert jnp.issubdtype(loss.dtype, jnp.floating)
    np.testing.assert_allclose(loss, [math.log(3.0)] * 2, rtol=1e-6)


def test_jit_matches_eager_and_traces_once():
    pos, neg = cosine_logits(np.random.default_rng(8), batch=BATCH, n_neg=N_NEG)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def jitted(p, n):
        return infonce(p, n)

    chex.clear_trace_counter()
    np.testing.assert_allclose(jitted(pos, neg), infonce(pos, neg), rtol=1e-6)
    jitted(pos + 1.0, neg - 1.0)  # same shapes: no retrace


@pytest.mark.parametrize(
    ("pos_shape", "neg_shape"),
    [
        ((3,), (4, 5)),  # batch mismatch
        ((3, 1), (3, 5)),  # pos not 1-D
        ((3,), (3,)),  # neg not 2-D
        ((3,), (3, 5, 2)),  # neg 3-D
        ((), (3, 5)),  # scalar pos
        ((3,), (3, 0)),  # no negatives
    ],
)
def test_bad_shapes_raise_naming_both(pos_shape, neg_shape):
    pattern = re.escape(f"pos_logits.shape={pos_shape}") + ".*" + re.escape(f"={neg_shape}")
    with pytest.raises(ValueError, match=pattern):
        infonce(np.zeros(pos_shape, np.float32), np.zeros(neg_shape, np.float32))


def test_bad_shapes_raise_under_jit():
    with pytest.raises(ValueError, match=re.escape("neg_logits.shape=(4, 5)")):
        infonce_jit(np.zeros(3, np.float32), np.zeros((4, 5), np.float32))
