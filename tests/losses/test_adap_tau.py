"""Numerical tests of advjax.losses.adap_tau (per-user temperatures)."""

import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from jax.test_util import check_grads

from advjax.losses import adap_tau_0, adap_tau_loss, adap_tau_user, infonce
from advjax.losses.adap_tau import _lambertw

TAU = 0.09
BETA = 1.0  # adap_tau_beta default of the public code
BATCH, N_NEG = 32, 64
N_USERS = 40

# Compiled once per shape and dtype; eager use is covered by the jit test.
loss_jit = jax.jit(adap_tau_loss)
user_jit = jax.jit(adap_tau_user)
tau0_jit = jax.jit(adap_tau_0, static_argnames="n_items")
lambertw_jit = jax.jit(_lambertw)
infonce_jit = jax.jit(infonce)
loss_grads = jax.jit(jax.grad(lambda p, n, t: adap_tau_loss(p, n, t).sum(), argnums=(0, 1, 2)))


def reference_loss(pos, neg, tau, pos_tau=None):
    """Float64 -log softmax of the positive with per-row temperatures."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    tau = np.broadcast_to(np.asarray(tau, np.float64), pos.shape)
    logits = np.concatenate([pos[:, None], neg], axis=1) / tau[:, None]
    top = logits.max(axis=1)
    lse = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    numerator = pos / (tau if pos_tau is None else np.asarray(pos_tau, np.float64))
    return lse - numerator


def reference_tau_user(user_loss, tau_0, beta, where=None):
    user_loss = np.asarray(user_loss, np.float64)
    mask = np.ones(user_loss.shape, bool) if where is None else np.asarray(where, bool)
    arg = np.clip((user_loss - user_loss[mask].mean()) / beta, -1.0 / math.e, 1000.0)
    # float64's -1/e lies just below the branch point, where scipy answers NaN.
    w = np.where(arg <= -1.0 / math.e, -1.0, scipy.special.lambertw(arg).real)
    tau_u = tau_0 * np.exp(w)
    return np.where(mask, tau_u, tau_0)


def random_inputs(seed, batch=BATCH, n_neg=N_NEG):
    """float32 cosines uniform in [-1, 1] and temperatures log-uniform in [0.05, 1]."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-1.0, 1.0, batch).astype(np.float32)
    neg = rng.uniform(-1.0, 1.0, (batch, n_neg)).astype(np.float32)
    tau = np.exp(rng.uniform(math.log(0.05), 0.0, batch)).astype(np.float32)
    return pos, neg, tau


def unit_rows(rng, n, dim=16):
    x = rng.standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# Lambert W.


def test_lambertw_matches_scipy():
    x = np.concatenate(
        [
            np.linspace(-0.36, 3.0, 501),
            np.geomspace(3.0, 1000.0, 200),
            -np.geomspace(1e-12, 0.3, 50),
        ]
    )
    ref = scipy.special.lambertw(x).real
    with jax.enable_x64(True):
        np.testing.assert_allclose(lambertw_jit(x), ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(lambertw_jit(x.astype(np.float32)), ref, rtol=1e-6, atol=1e-7)


def test_lambertw_special_values_and_branch_point():
    x = np.array([-1.0 / math.e, -1.0, 0.0, math.e, 2.0 * math.exp(2.0)], np.float32)
    np.testing.assert_allclose(lambertw_jit(x), [-1.0, -1.0, 0.0, 1.0, 2.0], atol=1e-6)
    near = np.float32(-1.0 / math.e) + np.float32(1e-6) * np.arange(1, 6, dtype=np.float32)
    w = np.asarray(lambertw_jit(near))
    assert np.all(w >= -1.0) and np.all(np.diff(w) > 0.0)


def test_lambertw_derivative():
    x = np.array([-0.3, -0.1, 0.0, 0.5, 10.0, 500.0])
    with jax.enable_x64(True):
        check_grads(lambertw_jit, (x,), order=1, modes=("rev",))
        grad = jax.jit(jax.vmap(jax.grad(_lambertw)))(x)
    w = scipy.special.lambertw(x).real
    np.testing.assert_allclose(grad, np.exp(-w) / (1.0 + w), rtol=1e-12)


# The loss with per-example temperatures.


def test_hand_computed_values():
    # Row 0, tau 1: e^0 / (e^0 + e^{log 3}) -> log 4. Row 1, tau 1/2: the negative's
    # logit is 2 * log(3) / 2 = log 3 as well -> log 4.
    pos = jnp.zeros(2)
    neg = jnp.array([[math.log(3.0)], [math.log(3.0) / 2.0]])
    loss = loss_jit(pos, neg, jnp.array([1.0, 0.5]))
    np.testing.assert_allclose(loss, [math.log(4.0)] * 2, rtol=1e-6)


@pytest.mark.parametrize("tau", [TAU, 0.5])
def test_constant_tau_is_infonce(tau):
    pos, neg, _ = random_inputs(0)
    expected = infonce_jit(pos / tau, neg / tau)
    np.testing.assert_allclose(loss_jit(pos, neg, np.float32(tau)), expected, rtol=1e-6)
    np.testing.assert_allclose(
        loss_jit(pos, neg, np.full(BATCH, tau, np.float32)), expected, rtol=1e-6
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_float64_reference_float32(seed):
    pos, neg, tau = random_inputs(seed)
    loss = loss_jit(pos, neg, tau)
    assert loss.shape == (BATCH,)
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(loss, reference_loss(pos, neg, tau), rtol=1e-5, atol=1e-6)


def test_matches_float64_reference_x64():
    pos, neg, tau = (x.astype(np.float64) for x in random_inputs(3))
    with jax.enable_x64(True):
        loss = loss_jit(pos, neg, tau)
        assert loss.dtype == jnp.float64
    np.testing.assert_allclose(loss, reference_loss(pos, neg, tau), rtol=1e-12, atol=1e-13)


def test_public_code_form_with_pos_tau():
    pos, neg, tau = random_inputs(4)
    loss = loss_jit(pos, neg, tau, pos_tau=np.float32(TAU))
    expected = reference_loss(pos, neg, tau, pos_tau=TAU)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)
    # pos_tau equal to tau is the plain loss.
    np.testing.assert_allclose(
        loss_jit(pos, neg, tau, pos_tau=tau), loss_jit(pos, neg, tau), rtol=1e-6, atol=1e-6
    )


def test_check_grads():
    pos, neg, tau = (x.astype(np.float64) for x in random_inputs(5))
    with jax.enable_x64(True):
        check_grads(loss_jit, (pos, neg, tau), order=1, modes=("rev",))


@pytest.mark.parametrize("taus", [(1e-3, 0.05, 1e3), (0.01, 0.01, 0.01), (1e4, 1e4, 1e4)])
def test_finite_at_extreme_temperatures_float32(taus):
    rng = np.random.default_rng(6)
    pos = rng.choice([-1.0, 1.0], size=BATCH).astype(np.float32)
    neg = rng.choice([-1.0, 1.0], size=(BATCH, N_NEG)).astype(np.float32)
    pos[0], neg[0] = 1.0, -1.0
    pos[1], neg[1] = -1.0, 1.0
    tau = np.resize(np.array(taus, np.float32), BATCH)
    loss = loss_jit(pos, neg, tau)
    chex.assert_tree_all_finite((loss, loss_grads(pos, neg, tau)))
    np.testing.assert_allclose(loss, reference_loss(pos, neg, tau), rtol=1e-5, atol=1e-6)


# Temperatures.


def test_tau_0_hand_computed():
    # mu+ = 0.5, mu = 0.1, |U| = 10, |I| = 100, |O| = 50: log(1000 / 100) = log 10.
    tau_0 = tau0_jit(np.full(50, 0.5, np.float32), np.full(10, 0.1, np.float32), n_items=100)
    assert tau_0.shape == ()
    np.testing.assert_allclose(tau_0, 0.4 / math.log(10.0), rtol=1e-6)


def test_tau_0_from_embeddings_puts_the_positive_at_one_half():
    # mu from per-user means of <u, mean unit item> equals the all-pairs mean; and at
    # tau_0 a mean positive against |U||I|/|O| mean items has softmax weight ~1/2.
    rng = np.random.default_rng(7)
    n_items = 60
    users, items = unit_rows(rng, N_USERS), unit_rows(rng, n_items)
    pairs_u = rng.integers(0, N_USERS, 200)
    pairs_i = rng.integers(0, n_items, 200)
    pos_cos = np.einsum("pd,pd->p", users[pairs_u], items[pairs_i]) + 0.5  # lift positives
    user_mean_cos = users @ items.mean(axis=0)
    np.testing.assert_allclose(user_mean_cos.mean(), (users @ items.T).mean(), rtol=1e-12)
    with jax.enable_x64(True):
        tau_0 = float(tau0_jit(pos_cos, user_mean_cos, n_items=n_items))
    mu_pos, mu_all = pos_cos.mean(), user_mean_cos.mean()
    ratio = N_USERS * n_items / pos_cos.size
    weight = math.exp(mu_pos / tau_0) / (ratio * math.exp(mu_all / tau_0))
    np.testing.assert_allclose(weight, 0.5, rtol=1e-10)


def test_tau_0_masks_equal_subsetting():
    rng = np.random.default_rng(8)
    pos_cos = rng.uniform(0.0, 1.0, 300)
    user_mean_cos = rng.uniform(-0.2, 0.2, N_USERS)
    pos_mask, user_mask = rng.random(300) < 0.7, rng.random(N_USERS) < 0.8
    with jax.enable_x64(True):
        masked = tau0_jit(
            pos_cos, user_mean_cos, n_items=50, pos_where=pos_mask, user_where=user_mask
        )
        subset = tau0_jit(pos_cos[pos_mask], user_mean_cos[user_mask], n_items=50)
    np.testing.assert_allclose(masked, subset, rtol=1e-13)


def test_tau_user_constant_losses_give_tau_0():
    tau_u = user_jit(np.full(N_USERS, 3.7, np.float32), np.float32(TAU), beta=BETA)
    np.testing.assert_allclose(tau_u, np.full(N_USERS, TAU), rtol=1e-6)


@pytest.mark.parametrize("beta", [BETA, 0.25])
def test_tau_user_matches_float64_reference(beta):
    rng = np.random.default_rng(9)
    user_loss = rng.uniform(2.0, 6.0, N_USERS)
    with jax.enable_x64(True):
        tau_u = user_jit(user_loss, TAU, beta=beta)
    np.testing.assert_allclose(tau_u, reference_tau_user(user_loss, TAU, beta), rtol=1e-12)
    tau_u32 = user_jit(user_loss.astype(np.float32), np.float32(TAU), beta=beta)
    assert tau_u32.dtype == jnp.float32
    np.testing.assert_allclose(tau_u32, reference_tau_user(user_loss, TAU, beta), rtol=2e-5)


def test_tau_user_rises_with_loss_and_clips():
    # Far below the mean: W(-1/e) = -1, so tau_0 / e. Above: tau grows like x / W(x).
    user_loss = np.array([-1e6, 0.0, 1.0, 2.0, 1e9], np.float32)
    tau_u = np.asarray(user_jit(user_loss, np.float32(1.0), beta=BETA))
    np.testing.assert_allclose(tau_u[0], math.exp(-1.0), rtol=1e-6)
    assert np.all(np.diff(tau_u) >= 0.0)
    np.testing.assert_allclose(tau_u[-1], 1000.0 / scipy.special.lambertw(1000.0).real, rtol=1e-5)


def test_tau_user_mask():
    rng = np.random.default_rng(10)
    user_loss = rng.uniform(2.0, 6.0, N_USERS)
    mask = rng.random(N_USERS) < 0.6
    user_loss[~mask] = 1e3  # must not move the mean
    with jax.enable_x64(True):
        tau_u = user_jit(user_loss, TAU, beta=BETA, where=mask)
    expected = reference_tau_user(user_loss, TAU, BETA, where=mask)
    np.testing.assert_allclose(tau_u, expected, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(tau_u)[~mask], TAU)


def test_tau_user_check_grads():
    rng = np.random.default_rng(11)
    user_loss = rng.uniform(2.0, 4.0, N_USERS)  # arguments well inside (-1/e, 1000)
    with jax.enable_x64(True):
        check_grads(lambda x: user_jit(x, TAU, beta=BETA), (user_loss,), order=1, modes=("rev",))


def test_one_epoch_of_the_schedule():
    # Per-user mean loss at temperature 1 -> tau_u -> the loss with each user's tau.
    rng = np.random.default_rng(12)
    users = np.arange(BATCH) % 8
    pos, neg, _ = random_inputs(13)
    example_loss = infonce_jit(pos, neg)
    counts = jax.ops.segment_sum(jnp.ones(BATCH), users, num_segments=8)
    user_loss = jax.ops.segment_sum(example_loss, users, num_segments=8) / counts
    tau_u = user_jit(user_loss, np.float32(TAU), beta=BETA)
    loss = loss_jit(pos, neg, tau_u[users])
    expected = reference_loss(pos, neg, np.asarray(tau_u)[users])
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
    del rng


# Shapes, options, jit.


@pytest.mark.parametrize(
    ("pos_shape", "neg_shape"),
    [((3,), (4, 5)), ((3, 1), (3, 5)), ((3,), (3,)), ((3,), (3, 0))],
)
def test_bad_shapes_raise_naming_both(pos_shape, neg_shape):
    pattern = re.escape(f"pos_cos.shape={pos_shape}") + ".*" + re.escape(f"={neg_shape}")
    with pytest.raises(ValueError, match=pattern):
        adap_tau_loss(np.zeros(pos_shape), np.zeros(neg_shape), 1.0)


@pytest.mark.parametrize("name", ["tau", "pos_tau"])
def test_bad_tau_shape_raises_naming_both(name):
    pattern = re.escape(f"{name}.shape=(4,)") + ".*" + re.escape("pos_cos.shape=(3,)")
    kwargs = {"tau": np.ones(4)} if name == "tau" else {"tau": np.ones(3), "pos_tau": np.ones(4)}
    with pytest.raises(ValueError, match=pattern):
        adap_tau_loss(np.zeros(3), np.zeros((3, 5)), **kwargs)


def test_temperature_helpers_validate():
    with pytest.raises(ValueError, match=re.escape("user_loss.shape=(2, 2)")):
        adap_tau_user(np.zeros((2, 2)), TAU, beta=BETA)
    with pytest.raises(ValueError, match=re.escape("where.shape=(3,)")):
        adap_tau_user(np.zeros(4), TAU, beta=BETA, where=np.ones(3, bool))
    with pytest.raises(ValueError, match="beta"):
        adap_tau_user(np.zeros(4), TAU, beta=0.0)
    with pytest.raises(ValueError, match=re.escape("pos_cos.shape=(0,)")):
        adap_tau_0(np.zeros(0), np.zeros(3), n_items=5)
    with pytest.raises(ValueError, match=re.escape("user_where.shape=(2,)")):
        adap_tau_0(np.zeros(4), np.zeros(3), n_items=5, user_where=np.ones(2, bool))
    with pytest.raises(ValueError, match="n_items"):
        adap_tau_0(np.zeros(4), np.zeros(3), n_items=0)


def test_jit_matches_eager_and_traces_once():
    pos, neg, tau = random_inputs(14)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def jitted(p, n, t, user_loss, t0):
        return adap_tau_loss(p, n, t, pos_tau=t0), adap_tau_user(user_loss, t0, beta=BETA)

    chex.clear_trace_counter()
    user_loss = np.linspace(1.0, 3.0, N_USERS, dtype=np.float32)
    loss, tau_u = jitted(pos, neg, tau, user_loss, np.float32(TAU))
    np.testing.assert_allclose(loss, adap_tau_loss(pos, neg, tau, pos_tau=TAU), rtol=1e-6)
    # Eager adap_tau_user unrolls Halley's iteration op by op (seconds): compare jitted.
    np.testing.assert_allclose(tau_u, user_jit(user_loss, np.float32(TAU), beta=BETA), rtol=1e-6)
    jitted(pos, neg, tau * 2.0, user_loss + 1.0, np.float32(0.2))  # new values: no retrace
