"""Adap-tau: InfoNCE with a per-user temperature set from data and loss statistics."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from advjax.losses.ccl import _check_cos_shapes
from advjax.losses.infonce import _as_inexact, _check_same_shape, _contrastive_nll, infonce
from advjax.losses.spec import EpochView, Loss, LossInputs, LossValue
from advjax.scores import l2_normalize
from advjax.settings import Setting, non_negative, positive

_INV_E = math.exp(-1.0)
# 1/e - _INV_E: float64 rounds 1/e up by this much.
_INV_E_ERR = -1.2428753672788363e-17
# The public code looks W up in a table over [-1/e, 1000]; larger arguments are clipped.
_MAX_W_ARG = 1000.0
_HALLEY_STEPS = 6


@jax.custom_jvp
def _lambertw(x: jax.Array) -> jax.Array:
    """Principal branch W0 of Lambert's W, ``W e^W = x``, for x >= -1/e.

    Arguments below -1/e are read as -1/e. Where ``p = sqrt(2 (e x + 1)) < 0.01`` (x
    within 2e-5 of -1/e) the branch-point series in p is exact to rounding and is
    returned as is (Halley's step would divide by ``W + 1 ~ 0`` there). Elsewhere the series,
    ``log1p`` or ``log x - log log x`` starts Halley's iteration, which converges
    cubically.
    """
    x = jnp.maximum(x, -_INV_E)
    # e x + 1 = e (x + 1/e), with 1/e split into its value in x's dtype plus the rest:
    # -1/e rounded to that dtype then lands on the branch point (W = -1), not on a
    # point sqrt(ulp) away that a naive e * x + 1 would produce.
    inv_e_hi = float(np.asarray(_INV_E, x.dtype))
    inv_e_lo = (_INV_E - inv_e_hi) + _INV_E_ERR
    dist = (x + inv_e_hi) + inv_e_lo
    p = jnp.sqrt(jnp.maximum(2.0 * math.e * dist, 0.0))
    near_branch = -1.0 + p * (
        1.0 + p * (-1.0 / 3.0 + p * (11.0 / 72.0 + p * (-43.0 / 540.0 + p * (769.0 / 17280.0))))
    )
    at_branch = p < 1e-2  # the series' next term, 221/8505 p^6, is below 3e-14 here
    log_x = jnp.log(jnp.maximum(x, math.e))
    w = jnp.where(x < -0.25, near_branch, jnp.where(x < 3.0, jnp.log1p(x), log_x - jnp.log(log_x)))
    for _ in range(_HALLEY_STEPS):
        exp_w = jnp.exp(w)
        f = w * exp_w - x
        w_plus_1 = jnp.where(at_branch, 1.0, w + 1.0)
        step = f / (exp_w * w_plus_1 - (w + 2.0) * f / (2.0 * w_plus_1))
        w = jnp.where(at_branch, w, w - step)
    return jnp.maximum(w, -1.0)


@_lambertw.defjvp
def _lambertw_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    w = _lambertw(x)
    # dW/dx = e^{-W} / (1 + W): infinite at the branch point, where 0 is returned
    # instead so that a clip in front of W never multiplies 0 by inf.
    w_plus_1 = w + 1.0
    ok = w_plus_1 > 0.0
    slope = jnp.where(ok, jnp.exp(-w) / jnp.where(ok, w_plus_1, 1.0), 0.0)
    return w, slope * x_dot


def _masked_mean(x: jax.Array, where: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """Returns (mean of x over where, count), both scalars; the mean of nothing is 0."""
    if where is None:
        return jnp.mean(x), jnp.asarray(x.shape[0], x.dtype)
    count = jnp.sum(where).astype(x.dtype)
    return jnp.sum(jnp.where(where, x, 0.0)) / jnp.maximum(count, 1.0), count


def _check_vector(name: str, x: jax.Array, where_name: str, where: ArrayLike | None):
    """Raises ValueError unless x is a non-empty vector and where, if given, matches it."""
    if x.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape [n] with n >= 1; got {name}.shape={x.shape}.")
    if where is not None:
        _check_same_shape(where_name, where, name, x)


def adap_tau_loss(
    pos_cos: ArrayLike,
    neg_cos: ArrayLike,
    tau: ArrayLike,
    *,
    pos_tau: ArrayLike | None = None,
) -> jax.Array:
    """Adap-tau's loss per example: InfoNCE with each example's own temperature.

    Computes ``-log(e^{pos_cos / tau_b} / (e^{pos_cos / tau_b} + sum_j e^{neg_cos_j / tau_b}))``
    in log space, with each example's own ``tau_b`` (its user's ``tau_u``, gathered by
    the caller). A constant ``tau`` gives ``infonce(pos_cos / tau, neg_cos / tau)``.

    ``pos_tau`` reproduces the public code (the Adap-tau repository and the
    AdvInfoNCE baseline), which divides the numerator's positive by the global
    ``tau_0`` but every term of the denominator, the positive's included, by
    ``tau_u``: ``log(e^{pos / tau_u} + sum_j e^{neg_j / tau_u}) - pos / pos_tau``. That
    form can be negative. Leave it ``None`` for the loss as written in the paper.

    Temperatures are inputs, not trained: compute them outside the differentiated
    function (``adap_tau_0``, ``adap_tau_user``) and pass them as constants.

    Args:
      pos_cos: Cosine ``cos(u, i)`` of each example's positive item. Shape [batch].
      neg_cos: Cosines ``cos(u, j)`` of the sampled negatives. Shape [batch, n_neg],
        n_neg >= 1.
      tau: Temperature of each example, > 0. Shape [batch] (or a scalar for all).
      pos_tau: Optional temperature of the numerator's positive only, > 0. Shape [] or
        [batch].

    Returns:
      The loss of each example, shape [batch]. Reduce it (e.g. mean) yourself.

    Raises:
      ValueError: if the shapes do not match the above.

    References:
      J. Chen et al., `Adap-tau: Adaptively Modulating Embedding Magnitude for
      Recommendation <https://arxiv.org/abs/2302.04775>`_, WWW 2023 (the softmax loss
      with the personalised temperature ``tau_u``).
    """
    pos, neg, tau = _as_inexact(pos_cos, neg_cos, tau)
    _check_cos_shapes(pos, neg)
    if tau.shape not in ((), pos.shape):
        raise ValueError(
            "tau must be a scalar or have the same shape as pos_cos; got "
            f"tau.shape={tau.shape}, pos_cos.shape={pos.shape}."
        )
    if pos_tau is not None and jnp.shape(pos_tau) not in ((), pos.shape):
        raise ValueError(
            "pos_tau must be a scalar or have the same shape as pos_cos; got "
            f"pos_tau.shape={jnp.shape(pos_tau)}, pos_cos.shape={pos.shape}."
        )
    tau = jnp.broadcast_to(tau, pos.shape)
    pos_logits = pos / tau
    loss = _contrastive_nll(pos_logits, neg / tau[:, None])
    if pos_tau is not None:
        loss = loss + pos_logits - pos / jnp.asarray(pos_tau, pos.dtype)
    return loss


def adap_tau_0(
    pos_cos: ArrayLike,
    user_mean_cos: ArrayLike,
    *,
    n_items: int,
    pos_where: ArrayLike | None = None,
    user_where: ArrayLike | None = None,
) -> jax.Array:
    """Adap-tau's global temperature ``tau_0`` from the current embeddings.

    ``tau_0 = (mu+ - mu) / log(|U| |I| / (2 |O|))``, with ``mu+`` the mean cosine of the
    observed (training) pairs ``O`` and ``mu`` the mean cosine over all user-item pairs
    ``U x I``. It solves ``e^{mu+ / tau} = (1/2) (|U| |I| / |O|) e^{mu / tau}``: a
    typical positive carries half the weight of the |U||I|/|O| typical items there are
    per observed pair, the ratio ``eta = 1/2`` at which the paper's Lemma 2 bounds the
    gradient's scale from below at its largest. The scores' variance term is dropped,
    as in the public code.

    ``mu`` needs no all-pairs matrix: ``mean_i cos(u, i) = <u_hat, mean_i i_hat>`` with
    unit vectors ``u_hat, i_hat``, so pass one such value per user. The public code
    counts only users with more interactions than the 20% quantile of interaction
    counts, in ``|U|``, ``|O|`` and both means; select them with the masks.

    The result is > 0 only when ``mu+ > mu``. Early in training (random embeddings)
    the two are nearly equal and ``tau_0`` is near 0 or negative, which is why the
    trainer keeps a fixed temperature for a warm-up period before switching to it.

    Args:
      pos_cos: Cosine of every observed training pair (u, i). Shape [n_pos].
      user_mean_cos: Mean cosine of each user with all items. Shape [n_users].
      n_items: Number of items ``|I|``.
      pos_where: Optional boolean mask of the pairs to count. Shape [n_pos].
      user_where: Optional boolean mask of the users to count. Shape [n_users].

    Returns:
      ``tau_0``, a scalar.

    Raises:
      ValueError: if an input is not a non-empty vector, a mask does not match its
        input, or ``n_items`` is not a positive integer.

    References:
      J. Chen et al., `Adap-tau: Adaptively Modulating Embedding Magnitude for
      Recommendation <https://arxiv.org/abs/2302.04775>`_, WWW 2023 (Adap-tau_0,
      derived from Lemma 2).
    """
    pos, user = _as_inexact(pos_cos, user_mean_cos)
    _check_vector("pos_cos", pos, "pos_where", pos_where)
    _check_vector("user_mean_cos", user, "user_where", user_where)
    if not isinstance(n_items, int) or n_items < 1:
        raise ValueError(f"n_items must be a positive integer; got n_items={n_items}.")
    pos_mask = None if pos_where is None else jnp.asarray(pos_where, bool)
    user_mask = None if user_where is None else jnp.asarray(user_where, bool)
    mu_pos, n_pos = _masked_mean(pos, pos_mask)
    mu_all, n_users = _masked_mean(user, user_mask)
    log_ratio = jnp.log(n_users) + math.log(n_items) - jnp.log(2.0 * n_pos)
    return (mu_pos - mu_all) / log_ratio


def adap_tau_user(
    user_loss: ArrayLike,
    tau_0: ArrayLike,
    *,
    beta: float,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Adap-tau's personalised temperatures ``tau_u`` from each user's recent loss.

    ``tau_u = tau_0 * exp(W((L_u - mean_v L_v) / beta))`` with ``W`` the principal
    branch of Lambert's W function, its argument clipped into [-1/e, 1000] as in the
    public code. Equivalently the inverse temperature is
    ``(1 / tau_0) * exp(-W(...))``. Users whose loss is above the mean get a higher
    temperature (a softer softmax), users below it a lower one; every user at the mean
    gets ``tau_0``.

    ``L_u`` is user u's mean per-example loss over the previous epoch, measured at
    temperature 1 and without gradient, i.e. ``infonce(pos_cos, neg_cos)`` averaged per
    user (a ``segment_mean`` over the epoch's examples).

    Args:
      user_loss: ``L_u`` per user. Shape [n_users].
      tau_0: Global temperature, > 0 (``adap_tau_0`` or, during warm-up, the fixed
        one). A scalar.
      beta: Scale ``beta > 0`` of the loss deviations (``adap_tau_beta`` in the
        AdvInfoNCE code, default 1.0).
      where: Optional boolean mask of users with a loss this epoch. Masked-out users
        do not count in the mean and get ``tau_0``. Shape [n_users].

    Returns:
      ``tau_u``, shape [n_users], in the dtype of ``user_loss``.

    Raises:
      ValueError: if ``user_loss`` is not a non-empty vector, ``where`` does not match
        it, or ``beta`` is a concrete value that is not > 0.

    References:
      J. Chen et al., `Adap-tau: Adaptively Modulating Embedding Magnitude for
      Recommendation <https://arxiv.org/abs/2302.04775>`_, WWW 2023 (the personalised
      Adap-tau, a Lambert-W closed form).
    """
    (loss,) = _as_inexact(user_loss)
    _check_vector("user_loss", loss, "where", where)
    if isinstance(beta, int | float) and not beta > 0:
        raise ValueError(f"beta must be > 0; got beta={beta}.")
    mask = None if where is None else jnp.asarray(where, bool)
    mean, _ = _masked_mean(loss, mask)
    arg = jnp.clip((loss - mean) / jnp.asarray(beta, loss.dtype), -_INV_E, _MAX_W_ARG)
    tau_0 = jnp.asarray(tau_0, loss.dtype)
    tau_u = tau_0 * jnp.exp(_lambertw(arg))
    if mask is not None:
        tau_u = jnp.where(mask, tau_u, tau_0)
    return tau_u


# Training with Adap-tau. Its per-run state (TrainState.loss_state) holds
# "tau_user" [U], the temperatures of the running epoch, and "loss_sum", "loss_count"
# [U], each user's InfoNCE at temperature 1 summed over it; each CF epoch starts by
# turning the previous epoch's sums into new temperatures.


def _init_state(cfg, n_users: int, n_items: int) -> dict:
    return {
        "tau_user": jnp.full((n_users,), cfg.tau, jnp.float32),
        "loss_sum": jnp.zeros((n_users,), jnp.float32),
        "loss_count": jnp.zeros((n_users,), jnp.float32),
    }


def epoch_temperatures(cfg, stats: dict, view: EpochView) -> dict:
    """Adap-tau's temperatures for the coming epoch; the loss sums restart from zero.

    tau_0 is --tau during the warm-up, then follows the embeddings (adap_tau_0 over
    users above the 20% quantile of training degree, as the public code counts them);
    a non-positive tau_0 (positives not yet above the mean cosine) keeps --tau. Each
    user's tau_u comes from its mean InfoNCE at temperature 1 over the previous epoch
    (adap_tau_user); users without one get tau_0.
    """
    pairs = view.pairs
    user_emb, item_emb = view.final_embeddings()
    user_hat, item_hat = l2_normalize(user_emb), l2_normalize(item_emb)
    degree = jnp.diff(pairs.indptr)
    pair_user = jnp.searchsorted(pairs.indptr, jnp.arange(pairs.items.shape[0]), side="right") - 1
    threshold = jnp.quantile(degree[pairs.active_users].astype(jnp.float32), 0.2)
    counted = degree > threshold
    pos_cos = jnp.sum(user_hat[pair_user] * item_hat[pairs.items], axis=-1)
    user_mean = user_hat @ jnp.mean(item_hat, axis=0)
    tau_0 = adap_tau_0(
        pos_cos,
        user_mean,
        n_items=item_emb.shape[0],
        pos_where=counted[pair_user],
        user_where=counted,
    )
    fixed = (view.epoch < cfg.adap_tau_warm_up) | ~(tau_0 > 0)
    tau_0 = jnp.where(fixed, jnp.float32(cfg.tau), tau_0)
    seen = stats["loss_count"] > 0
    mean_loss = stats["loss_sum"] / jnp.maximum(stats["loss_count"], 1.0)
    tau_user = adap_tau_user(mean_loss, tau_0, beta=cfg.adap_tau_beta, where=seen)
    zeros = jnp.zeros_like(stats["loss_sum"])
    return {"tau_user": tau_user, "loss_sum": zeros, "loss_count": zeros}


def _value(cfg, inputs: LossInputs) -> LossValue:
    tau_user = inputs.loss_state["tau_user"][inputs.users]
    loss = adap_tau_loss(inputs.pos_cos, inputs.neg_cos, tau_user)
    user_loss = jax.lax.stop_gradient(infonce(inputs.pos_cos, inputs.neg_cos))
    return LossValue(loss, batch_stats={"user_loss": user_loss})


def _accumulate(stats: dict, users: jax.Array, batch_stats: dict) -> dict:
    return {
        **stats,
        "loss_sum": stats["loss_sum"].at[users].add(batch_stats["user_loss"]),
        "loss_count": stats["loss_count"].at[users].add(1.0),
    }


LOSS = Loss(
    name="adap_tau",
    value=_value,
    settings=(
        Setting(
            "adap_tau_warm_up",
            100,
            "Adap-tau: epochs with tau_0 = --tau before tau_0 follows the embeddings.",
            non_negative,
        ),
        Setting(
            "adap_tau_beta",
            1.0,
            "Adap-tau: scale beta of the per-user loss deviations (Lambert-W form).",
            positive,
        ),
    ),
    init_state=_init_state,
    epoch_start=epoch_temperatures,
    accumulate=_accumulate,
)
