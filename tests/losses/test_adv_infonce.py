"""Numerical tests of advjax.losses.adv_infonce and the hardness helpers (SPEC section 2)."""

import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from advjax.losses import adv_infonce, hardness_delta, hardness_kl, infonce

TAU = 0.09
K_NEG = 64.0  # the paper's K
BATCH, N_NEG = 32, 64

# Compiled once per shape and dtype (k_neg is traced, so K = 1 and K = 64 share a
# program): eager dispatch compiles every primitive separately and makes the suite
# several times slower. Eager use is covered by the jit test.
adv_jit = jax.jit(adv_infonce)
delta_jit = jax.jit(hardness_delta)
kl_jit = jax.jit(hardness_kl)
infonce_jit = jax.jit(infonce)
adv_grads = jax.jit(
    jax.grad(lambda p, n, h, k: adv_infonce(p, n, h, k_neg=k).sum(), argnums=(0, 1, 2))
)


def reference_delta(hardness):
    """Float64 delta_j = log(N p_j), p = softmax(hardness), via a max-shifted log-softmax."""
    hardness = np.asarray(hardness, np.float64)
    n_neg = hardness.shape[-1]
    shifted = hardness - hardness.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return np.log(n_neg) + log_p


def reference_terms(pos, neg, hardness, k_neg):
    """Float64 log-weights of [pos, negs] in AdvInfoNCE's denominator (SPEC Eq. 7)."""
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    return np.concatenate([pos[:, None], np.log(k_neg) + reference_delta(hardness) + neg], axis=1)


def reference_adv_infonce(pos, neg, hardness, k_neg):
    terms = reference_terms(pos, neg, hardness, k_neg)
    top = terms.max(axis=1)
    return top + np.log(np.exp(terms - top[:, None]).sum(axis=1)) - np.asarray(pos, np.float64)


def reference_weights(pos, neg, hardness, k_neg):
    """Float64 softmax of the denominator's terms: column 0 is the positive's weight."""
    terms = reference_terms(pos, neg, hardness, k_neg)
    weights = np.exp(terms - terms.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def random_inputs(seed, batch=BATCH, n_neg=N_NEG, tau=TAU, hardness_scale=1.0):
    """float32 logits with cosines uniform in [-1, 1] over tau, and Gaussian hardness."""
    rng = np.random.default_rng(seed)
    pos = (rng.uniform(-1.0, 1.0, batch) / tau).astype(np.float32)
    neg = (rng.uniform(-1.0, 1.0, (batch, n_neg)) / tau).astype(np.float32)
    hardness = (hardness_scale * rng.standard_normal((batch, n_neg))).astype(np.float32)
    return pos, neg, hardness


# Values.


def test_hand_computed_value():
    # p = softmax([0, log 3]) = [1/4, 3/4], N = 2, so e^delta = [1/2, 3/2].
    # Denominator / e^pos = 1 + K * (1/2 * e^0 + 3/2 * e^{log 2}) = 1 + 2 * 3.5 = 8.
    pos = jnp.array([0.0])
    neg = jnp.array([[0.0, math.log(2.0)]])
    hardness = jnp.array([[0.0, math.log(3.0)]])
    loss = adv_jit(pos, neg, hardness, k_neg=2.0)
    np.testing.assert_allclose(loss, [math.log(8.0)], rtol=1e-6)
    np.testing.assert_allclose(delta_jit(hardness), [[math.log(0.5), math.log(1.5)]], 1e-6)
    np.testing.assert_allclose(kl_jit(hardness), [-math.log(0.75) / 2.0], rtol=1e-6)


@pytest.mark.parametrize("k_neg", [1.0, K_NEG])
@pytest.mark.parametrize("tau", [TAU, 0.75])
def test_matches_float64_reference_float32(k_neg, tau):
    pos, neg, hardness = random_inputs(seed=0, tau=tau, hardness_scale=3.0)
    loss = adv_jit(pos, neg, hardness, k_neg=k_neg)
    assert loss.shape == (BATCH,)
    assert loss.dtype == jnp.float32
    expected = reference_adv_infonce(pos, neg, hardness, k_neg)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(delta_jit(hardness), reference_delta(hardness), atol=2e-6)


def test_matches_float64_reference_x64():
    pos, neg, hardness = (x.astype(np.float64) for x in random_inputs(seed=1, hardness_scale=3.0))
    with jax.enable_x64(True):
        loss = adv_jit(pos, neg, hardness, k_neg=K_NEG)
        delta = delta_jit(hardness)
        assert loss.dtype == jnp.float64
    expected = reference_adv_infonce(pos, neg, hardness, K_NEG)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(delta, reference_delta(hardness), rtol=1e-12, atol=1e-13)


# Reduction to InfoNCE when the hardness is uniform (SPEC: delta = 0 reduces to InfoNCE).


def test_constant_hardness_gives_zero_delta():
    hardness = np.broadcast_to(
        np.linspace(-40.0, 40.0, BATCH, dtype=np.float32)[:, None], (BATCH, N_NEG)
    )
    np.testing.assert_array_equal(delta_jit(hardness), np.zeros((BATCH, N_NEG)))
    np.testing.assert_array_equal(kl_jit(hardness), np.zeros(BATCH))


def test_constant_hardness_with_unit_k_is_infonce():
    pos, neg, _ = random_inputs(seed=2)
    hardness = np.broadcast_to(np.linspace(-5.0, 5.0, BATCH, dtype=np.float32)[:, None], neg.shape)
    np.testing.assert_allclose(
        adv_jit(pos, neg, hardness, k_neg=1.0), infonce_jit(pos, neg), rtol=1e-6, atol=1e-7
    )


def test_constant_hardness_scales_negatives_by_k():
    pos, neg, _ = random_inputs(seed=3)
    hardness = np.zeros_like(neg)
    np.testing.assert_allclose(
        adv_jit(pos, neg, hardness, k_neg=K_NEG),
        infonce_jit(pos, neg + np.float32(math.log(K_NEG))),
        rtol=1e-6,
        atol=1e-7,
    )


def test_hardness_changes_the_loss():
    # Guards the reduction tests against a loss that ignores hardness altogether.
    pos, neg, hardness = random_inputs(seed=4, hardness_scale=3.0)
    uniform = adv_jit(pos, neg, np.zeros_like(hardness), k_neg=K_NEG)
    assert np.max(np.abs(adv_jit(pos, neg, hardness, k_neg=K_NEG) - uniform)) > 1e-2


def test_loss_is_invariant_to_shifting_hardness_per_row():
    pos, neg, hardness = random_inputs(seed=5, hardness_scale=3.0)
    shift = np.arange(BATCH, dtype=np.float32)[:, None]
    np.testing.assert_allclose(
        adv_jit(pos, neg, hardness + shift, k_neg=K_NEG),
        adv_jit(pos, neg, hardness, k_neg=K_NEG),
        rtol=1e-5,
    )


# KL to the uniform distribution (SPEC Eq. 16).


def test_mean_delta_is_minus_kl_from_uniform():
    _, _, hardness = (x.astype(np.float64) for x in random_inputs(seed=6, hardness_scale=2.0))
    with jax.enable_x64(True):
        delta = np.asarray(delta_jit(hardness))
        kl = np.asarray(kl_jit(hardness))
    # KL(P0 || P) straight from its definition, P0 uniform.
    n_neg = hardness.shape[-1]
    p = np.exp(hardness) / np.exp(hardness).sum(axis=-1, keepdims=True)
    kl_definition = np.sum((1.0 / n_neg) * np.log((1.0 / n_neg) / p), axis=-1)
    np.testing.assert_allclose(kl, kl_definition, rtol=1e-10)
    np.testing.assert_allclose(delta.mean(axis=-1), -kl_definition, rtol=1e-10)
    # e^delta re-weights the negatives without changing their total weight.
    np.testing.assert_allclose(np.exp(delta).mean(axis=-1), np.ones(BATCH), rtol=1e-12)


def test_kl_is_nonnegative_and_zero_only_when_uniform():
    _, _, hardness = random_inputs(seed=7, hardness_scale=0.1)
    kl = np.asarray(kl_jit(hardness))
    assert kl.shape == (BATCH,)
    assert np.all(kl > 1e-4)  # every row has some spread
    assert np.all(np.asarray(kl_jit(np.full((BATCH, N_NEG), 3.0, np.float32))) == 0.0)
    # Even rows uniform, odd rows barely not.
    nearly = np.zeros((BATCH, N_NEG), np.float32)
    nearly[1::2, 0] = 1e-2
    kl_nearly = np.asarray(kl_jit(nearly))
    assert np.all(kl_nearly[0::2] == 0.0)
    assert np.all(kl_nearly[1::2] > 0.0)


def test_kl_of_one_hot_limit():
    # One score a gap above the rest: P -> one-hot, KL -> (N - 1) / N * gap - log N.
    hardness = np.zeros((BATCH, N_NEG), np.float32)
    hardness[:, 0] = 50.0
    gap_share = (N_NEG - 1) / N_NEG * 50.0
    expected = gap_share - np.log(N_NEG) + np.log1p((N_NEG - 1) * np.exp(-50.0))
    np.testing.assert_allclose(kl_jit(hardness), np.full(BATCH, expected), rtol=1e-6)


# Gradients.


@pytest.mark.parametrize("k_neg", [1.0, K_NEG])
def test_check_grads(k_neg):
    pos, neg, hardness = (x.astype(np.float64) for x in random_inputs(seed=8))
    with jax.enable_x64(True):
        check_grads(
            lambda p, n, h: adv_jit(p, n, h, k_neg=k_neg),
            (pos, neg, 2.0 * hardness),
            order=1,
            modes=("rev",),
        )


def test_check_grads_hardness_helpers():
    _, _, hardness = random_inputs(seed=9, hardness_scale=2.0)
    with jax.enable_x64(True):
        check_grads(delta_jit, (hardness.astype(np.float64),), order=1, modes=("rev",))
        check_grads(kl_jit, (hardness.astype(np.float64),), order=1, modes=("rev",))


def test_gradient_wrt_positive_closed_form():
    # SPEC Eq. 19: d loss / d s_ui = -(1 - weight of the positive in the softmax).
    pos, neg, hardness = (x.astype(np.float64) for x in random_inputs(seed=10, hardness_scale=3.0))
    with jax.enable_x64(True):
        grad_pos, _, _ = adv_grads(pos, neg, hardness, K_NEG)
    w_pos = reference_weights(pos, neg, hardness, K_NEG)[:, 0]
    np.testing.assert_allclose(grad_pos, -(1.0 - w_pos), rtol=1e-10, atol=1e-14)


def test_gradient_wrt_negatives_closed_form():
    # SPEC Eq. 20: d loss / d s_uj = K e^{delta_j} e^{s_uj} / Z, proportional to e^{delta_j}.
    pos, neg, hardness = (x.astype(np.float64) for x in random_inputs(seed=11, hardness_scale=3.0))
    with jax.enable_x64(True):
        _, grad_neg, _ = adv_grads(pos, neg, hardness, K_NEG)
    grad_neg = np.asarray(grad_neg)
    terms = reference_terms(pos, neg, hardness, K_NEG)
    log_z = terms.max(axis=1) + np.log(np.exp(terms - terms.max(axis=1, keepdims=True)).sum(1))
    delta = reference_delta(hardness)
    expected = K_NEG * np.exp(delta + neg - log_z[:, None])
    np.testing.assert_allclose(grad_neg, expected, rtol=1e-10, atol=1e-14)
    # Divided by e^{delta_j} e^{s_uj}, the gradient is the same for every j of a row: K / Z.
    ratio = grad_neg / np.exp(delta + neg)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-10)
    np.testing.assert_allclose(ratio[:, 0], K_NEG * np.exp(-log_z), rtol=1e-10)


def test_gradient_wrt_hardness_closed_form():
    # d loss / d g_m = w_m - p_m * sum_j w_j, with w the negatives' softmax weights and
    # p = softmax(g): the adversary's ascent direction. Rows sum to 0 (shift invariance).
    pos, neg, hardness = (x.astype(np.float64) for x in random_inputs(seed=12, hardness_scale=3.0))
    with jax.enable_x64(True):
        _, _, grad_hardness = adv_grads(pos, neg, hardness, K_NEG)
    w_neg = reference_weights(pos, neg, hardness, K_NEG)[:, 1:]
    p = np.exp(reference_delta(hardness)) / hardness.shape[-1]
    expected = w_neg - p * w_neg.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(grad_hardness, expected, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(np.asarray(grad_hardness).sum(axis=1), np.zeros(BATCH), atol=1e-14)


def test_adversary_ascent_step_raises_the_loss():
    pos, neg, hardness = random_inputs(seed=13)
    _, _, grad_hardness = adv_grads(pos, neg, hardness, K_NEG)
    before = adv_jit(pos, neg, hardness, k_neg=K_NEG).sum()
    after = adv_jit(pos, neg, hardness + 1e-2 * grad_hardness, k_neg=K_NEG).sum()
    assert after > before


def test_float32_gradients_match_float64_closed_form():
    pos, neg, hardness = random_inputs(seed=14, hardness_scale=3.0)
    grad_pos, grad_neg, grad_hardness = adv_grads(pos, neg, hardness, K_NEG)
    weights = reference_weights(pos, neg, hardness, K_NEG)
    p = np.exp(reference_delta(hardness)) / hardness.shape[-1]
    w_neg = weights[:, 1:]
    np.testing.assert_allclose(grad_pos, -(1.0 - weights[:, 0]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad_neg, w_neg, atol=1e-6)
    np.testing.assert_allclose(
        grad_hardness, w_neg - p * w_neg.sum(axis=1, keepdims=True), atol=1e-6
    )


# Float32 robustness.


@pytest.mark.parametrize(
    ("logit_scale", "hardness_scale"), [(1.0 / TAU, 1.0), (1.0 / TAU, 50.0), (100.0, 50.0)]
)
def test_finite_at_extreme_values_float32(logit_scale, hardness_scale):
    rng = np.random.default_rng(15)
    signs = rng.choice([-1.0, 1.0], size=(BATCH, N_NEG + 1)).astype(np.float32)
    pos, neg = logit_scale * signs[:, 0], logit_scale * signs[:, 1:]
    hardness = hardness_scale * rng.choice([-1.0, 1.0], size=(BATCH, N_NEG)).astype(np.float32)
    pos[0], neg[0] = logit_scale, -logit_scale
    pos[1], neg[1] = -logit_scale, logit_scale
    hardness[2] = -hardness_scale
    hardness[2, 0] = hardness_scale  # one negative holds almost all hardness mass
    loss = adv_jit(pos, neg, hardness, k_neg=K_NEG)
    grads = adv_grads(pos, neg, hardness, K_NEG)
    chex.assert_tree_all_finite((loss, grads, delta_jit(hardness), kl_jit(hardness)))
    np.testing.assert_allclose(
        loss,
        reference_adv_infonce(pos, neg, hardness, K_NEG),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        kl_jit(hardness), -reference_delta(hardness).mean(axis=-1), rtol=1e-5, atol=1e-6
    )


# Shapes, options, jit.


@pytest.mark.parametrize(
    ("pos_shape", "neg_shape"),
    [((3,), (4, 5)), ((3, 1), (3, 5)), ((3,), (3,)), ((3,), (3, 0))],
)
def test_bad_logit_shapes_raise_naming_both(pos_shape, neg_shape):
    pattern = re.escape(f"pos_logits.shape={pos_shape}") + ".*" + re.escape(f"={neg_shape}")
    with pytest.raises(ValueError, match=pattern):
        adv_infonce(np.zeros(pos_shape), np.zeros(neg_shape), np.zeros(neg_shape))


@pytest.mark.parametrize("hardness_shape", [(3, 4), (3, 5, 1), (5,), (1, 5)])
def test_bad_hardness_shape_raises_naming_both(hardness_shape):
    pattern = (
        re.escape(f"hardness_logits.shape={hardness_shape}")
        + ".*"
        + re.escape("neg_logits.shape=(3, 5)")
    )
    with pytest.raises(ValueError, match=pattern):
        adv_infonce(np.zeros(3), np.zeros((3, 5)), np.zeros(hardness_shape))


@pytest.mark.parametrize("shape", [(), (3, 0)])
def test_hardness_helpers_reject_missing_negatives(shape):
    for fn in (hardness_delta, hardness_kl):
        with pytest.raises(ValueError, match=re.escape(f"hardness_logits.shape={shape}")):
            fn(np.zeros(shape))


@pytest.mark.parametrize("k_neg", [0.0, -1.0, float("nan")])
def test_nonpositive_k_neg_raises(k_neg):
    with pytest.raises(ValueError, match="k_neg"):
        adv_infonce(np.zeros(2), np.zeros((2, 3)), np.zeros((2, 3)), k_neg=k_neg)


def test_jit_matches_eager_and_traces_once():
    pos, neg, hardness = random_inputs(seed=16, hardness_scale=3.0)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def jitted(p, n, h, k):
        return adv_infonce(p, n, h, k_neg=k), hardness_kl(h)

    chex.clear_trace_counter()
    loss, kl = jitted(pos, neg, hardness, K_NEG)
    np.testing.assert_allclose(loss, adv_infonce(pos, neg, hardness, k_neg=K_NEG), rtol=1e-6)
    np.testing.assert_allclose(kl, hardness_kl(hardness), rtol=1e-6)
    # New values and a new (traced) k_neg reuse the compiled function.
    loss_k1, _ = jitted(pos, neg, hardness, 1.0)
    np.testing.assert_allclose(loss_k1, adv_infonce(pos, neg, hardness, k_neg=1.0), rtol=1e-6)


def test_jit_with_static_k_neg():
    pos, neg, hardness = random_inputs(seed=17)
    fn = jax.jit(adv_infonce, static_argnames="k_neg")
    np.testing.assert_allclose(
        fn(pos, neg, hardness, k_neg=K_NEG),
        adv_jit(pos, neg, hardness, k_neg=K_NEG),
        rtol=1e-6,
    )
