"""Numerical tests of advjax.losses.bc_loss (bias-aware margins in InfoNCE)."""

import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from advjax.losses import bc_loss, bias_margin, infonce

TAU = 0.07  # tau1 default of the public code
EPS = 1e-7
BATCH, N_NEG = 32, 64

# Compiled once per shape and dtype (tau is traced); eager use is covered by the jit test.
bc_jit = jax.jit(bc_loss)
margin_jit = jax.jit(bias_margin)
infonce_jit = jax.jit(infonce)
bc_grads = jax.jit(jax.grad(lambda p, n, m, t: bc_loss(p, n, m, tau=t).sum(), argnums=(0, 1, 2)))


def reference_shifted_cos(pos, margin, eps=EPS):
    """Float64 cos(theta + min(M, pi - theta)) straight from the paper, with arccos.

    The clip bound is 1 - eps rounded to the inputs' dtype, as the loss computes it.
    """
    hi = np.float64(np.asarray(1.0 - eps, np.asarray(pos).dtype))
    theta = np.arccos(np.clip(np.asarray(pos, np.float64), -hi, hi))
    margin = np.clip(np.asarray(margin, np.float64), 0.0, math.pi)
    return np.cos(theta + np.minimum(margin, math.pi - theta))


def reference_bc_loss(pos, neg, margin, tau, eps=EPS):
    pos_logit = reference_shifted_cos(pos, margin, eps) / tau
    logits = np.concatenate([pos_logit[:, None], np.asarray(neg, np.float64) / tau], axis=1)
    top = logits.max(axis=1)
    return top + np.log(np.exp(logits - top[:, None]).sum(axis=1)) - pos_logit


def random_inputs(seed, batch=BATCH, n_neg=N_NEG, max_margin=1.0):
    """float32 cosines uniform in (-1, 1) and margins uniform in [0, max_margin]."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-0.99, 0.99, batch).astype(np.float32)
    neg = rng.uniform(-1.0, 1.0, (batch, n_neg)).astype(np.float32)
    margin = rng.uniform(0.0, max_margin, batch).astype(np.float32)
    return pos, neg, margin


# Values.


def test_hand_computed_values():
    # Row 0: theta = pi/2, M = pi/2 -> angle pi, c+ = -1; one negative at cos 0, tau 1:
    #   log(e^{-1} + 1) + 1 = log(1 + e).
    # Row 1: theta = pi/3, M = pi/6 -> c+ = cos(pi/2) = 0: log(1 + 1) = log 2.
    # Row 2: theta = pi/2, M = pi (capped at pi - theta) -> c+ = -1 again.
    pos = jnp.array([0.0, 0.5, 0.0])
    neg = jnp.zeros((3, 1))
    margin = jnp.array([math.pi / 2, math.pi / 6, math.pi])
    expected = [math.log1p(math.e), math.log(2.0), math.log1p(math.e)]
    np.testing.assert_allclose(bc_jit(pos, neg, margin, tau=1.0), expected, rtol=1e-6)


@pytest.mark.parametrize("max_margin", [1.0, math.pi])
@pytest.mark.parametrize("tau", [TAU, 0.5])
def test_matches_float64_reference_float32(tau, max_margin):
    pos, neg, margin = random_inputs(0, max_margin=max_margin)
    loss = bc_jit(pos, neg, margin, tau=tau)
    assert loss.shape == (BATCH,)
    assert loss.dtype == jnp.float32
    expected = reference_bc_loss(pos, neg, margin, tau)
    np.testing.assert_allclose(loss, expected, rtol=2e-5, atol=2e-5)


def test_matches_float64_reference_x64():
    pos, neg, margin = (x.astype(np.float64) for x in random_inputs(1, max_margin=math.pi))
    with jax.enable_x64(True):
        loss = bc_jit(pos, neg, margin, tau=TAU)
        assert loss.dtype == jnp.float64
    expected = reference_bc_loss(pos, neg, margin, TAU)
    np.testing.assert_allclose(loss, expected, rtol=1e-11, atol=1e-11)


def test_bias_margin_is_arccos_and_clips():
    bias = np.array([1.0, 0.5, 0.0, -1.0, 1.0000001, -1.0000001], np.float32)
    expected = [0.0, math.pi / 3, math.pi / 2, math.pi, 0.0, math.pi]
    margin = margin_jit(bias)
    chex.assert_tree_all_finite(margin)
    np.testing.assert_allclose(margin, expected, rtol=1e-6, atol=1e-6)
    assert margin_jit(np.zeros((2, 3), np.float32)).shape == (2, 3)


# Reductions and limits.


def test_zero_margin_is_infonce_on_cos_over_tau():
    pos, neg, _ = random_inputs(2)
    zero = np.zeros(BATCH, np.float32)
    np.testing.assert_allclose(
        bc_jit(pos, neg, zero, tau=TAU), infonce_jit(pos / TAU, neg / TAU), rtol=1e-6, atol=1e-7
    )


def test_bias_cos_of_one_gives_infonce():
    # The paper's margin from a popularity cosine of 1 is 0: no widening at all.
    pos, neg, _ = (x.astype(np.float64) for x in random_inputs(3))
    with jax.enable_x64(True):
        margin = margin_jit(np.ones(BATCH))
        loss = bc_jit(pos, neg, margin, tau=TAU)
        expected = infonce_jit(pos / TAU, neg / TAU)
    np.testing.assert_array_equal(margin, np.zeros(BATCH))
    np.testing.assert_allclose(loss, expected, rtol=1e-14, atol=1e-14)


def test_margin_raises_the_loss_monotonically():
    pos, neg, _ = random_inputs(4)
    losses = [
        np.asarray(bc_jit(pos, neg, np.full(BATCH, m, np.float32), tau=TAU))
        for m in (0.0, 0.2, 0.5, 1.0)
    ]
    assert all(np.all(b > a) for a, b in zip(losses, losses[1:], strict=False))


def test_angle_is_capped_at_pi():
    # theta + M >= pi: the positive scores cos(pi) = -1 whatever the excess.
    pos = np.array([-0.5, 0.0, 0.5], np.float32)
    neg = np.zeros((3, 2), np.float32)
    margin = np.array([2.5, 3.0, math.pi], np.float32)  # theta + M >= pi in every row
    expected = infonce_jit(np.full(3, -1.0 / TAU, np.float32), neg / TAU)
    np.testing.assert_allclose(bc_jit(pos, neg, margin, tau=TAU), expected, rtol=1e-6)


def test_margin_is_clipped_into_zero_pi():
    pos, neg, _ = random_inputs(5)
    np.testing.assert_allclose(
        bc_jit(pos, neg, np.full(BATCH, -0.5, np.float32), tau=TAU),
        bc_jit(pos, neg, np.zeros(BATCH, np.float32), tau=TAU),
        rtol=1e-7,
    )


# Gradients.


def test_check_grads():
    # Cosines away from the +-(1 - eps) clip; margins on both sides of the pi cap.
    pos, neg, margin = (x.astype(np.float64) for x in random_inputs(6, max_margin=math.pi))
    with jax.enable_x64(True):
        check_grads(lambda p, n: bc_jit(p, n, margin, tau=TAU), (pos, neg), order=1, modes=("rev",))


def test_margin_gets_no_gradient():
    pos, neg, margin = random_inputs(7)
    _, _, grad_margin = bc_grads(pos, neg, margin, TAU)
    np.testing.assert_array_equal(grad_margin, np.zeros(BATCH))


def test_gradient_wrt_positive_closed_form():
    # d loss / d c = -(1 - w_pos) / tau * d c+ / d c, with d c+ / d c
    # = sin(theta + M) / sin(theta) below the cap and 0 above it.
    pos, neg, margin = (x.astype(np.float64) for x in random_inputs(8, max_margin=math.pi))
    with jax.enable_x64(True):
        grad_pos, grad_neg, _ = bc_grads(pos, neg, margin, TAU)
    theta = np.arccos(pos)
    capped = theta + margin >= math.pi
    dshift = np.where(capped, 0.0, np.sin(theta + margin) / np.sin(theta))
    pos_logit = reference_shifted_cos(pos, margin) / TAU
    w_pos = 1.0 / (1.0 + np.exp(neg / TAU - pos_logit[:, None]).sum(axis=1))
    assert np.any(capped) and not np.all(capped)
    np.testing.assert_allclose(grad_pos, -(1.0 - w_pos) / TAU * dshift, rtol=1e-9, atol=1e-12)
    w_neg = np.exp(neg / TAU - pos_logit[:, None]) * w_pos[:, None]
    np.testing.assert_allclose(grad_neg, w_neg / TAU, rtol=1e-9, atol=1e-12)


# Float32 robustness.


@pytest.mark.parametrize("tau", [0.05, TAU])
@pytest.mark.parametrize("margin_value", [0.0, 0.3, math.pi])
def test_finite_at_cosines_of_plus_minus_one_float32(tau, margin_value):
    rng = np.random.default_rng(9)
    pos = rng.choice([-1.0, 1.0], size=BATCH).astype(np.float32)
    neg = rng.choice([-1.0, 1.0], size=(BATCH, N_NEG)).astype(np.float32)
    pos[:2] = [1.0000001, -1.0000001]  # rounding past +-1 in a cosine of unit vectors
    pos[2], neg[2] = 1.0, -1.0  # the positive wins by the widest gap
    pos[3], neg[3] = -1.0, 1.0  # every negative beats the positive
    margin = np.full(BATCH, margin_value, np.float32)
    loss = bc_jit(pos, neg, margin, tau=tau)
    grads = bc_grads(pos, neg, margin, tau)
    chex.assert_tree_all_finite((loss, grads))
    np.testing.assert_allclose(loss, reference_bc_loss(pos, neg, margin, tau), rtol=1e-5, atol=1e-5)


def test_gradient_finite_just_inside_the_clip_float32():
    # The clip is what keeps sin(theta + M) / sin(theta) finite as theta -> 0.
    pos = np.array([1.0 - 2e-7, 0.99999994, -0.99999994], np.float32)
    neg = np.zeros((3, 4), np.float32)
    grads = bc_grads(pos, neg, np.full(3, 0.5, np.float32), 0.05)
    chex.assert_tree_all_finite(grads)


# Shapes, options, jit.


@pytest.mark.parametrize(
    ("pos_shape", "neg_shape"),
    [((3,), (4, 5)), ((3, 1), (3, 5)), ((3,), (3,)), ((3,), (3, 0))],
)
def test_bad_shapes_raise_naming_both(pos_shape, neg_shape):
    pattern = re.escape(f"pos_cos.shape={pos_shape}") + ".*" + re.escape(f"={neg_shape}")
    with pytest.raises(ValueError, match=pattern):
        bc_loss(np.zeros(pos_shape), np.zeros(neg_shape), np.zeros(pos_shape), tau=TAU)


@pytest.mark.parametrize("margin_shape", [(4,), (3, 1), ()])
def test_bad_margin_shape_raises_naming_both(margin_shape):
    pattern = re.escape(f"margin.shape={margin_shape}") + ".*" + re.escape("pos_cos.shape=(3,)")
    with pytest.raises(ValueError, match=pattern):
        bc_loss(np.zeros(3), np.zeros((3, 5)), np.zeros(margin_shape), tau=TAU)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": -1.0}, "tau"),
        ({"tau": TAU, "eps": 0.0}, "eps"),
        ({"tau": TAU, "eps": 1.0}, "eps"),
    ],
)
def test_out_of_range_options_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        bc_loss(np.zeros(2), np.zeros((2, 3)), np.zeros(2), **kwargs)


def test_jit_matches_eager_and_traces_once():
    pos, neg, margin = random_inputs(10)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def jitted(p, n, m, t):
        return bc_loss(p, n, m, tau=t)

    chex.clear_trace_counter()
    eager = bc_loss(pos, neg, margin, tau=TAU)
    np.testing.assert_allclose(jitted(pos, neg, margin, TAU), eager, rtol=1e-6)
    jitted(pos, neg, margin, 0.2)  # a new (traced) temperature: no retrace
