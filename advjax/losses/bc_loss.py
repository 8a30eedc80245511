"""BC loss: InfoNCE whose positive angle is widened by a popularity-bias-aware margin."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from advjax.initializers import init_embeddings
from advjax.losses.ccl import _check_cos_shapes
from advjax.losses.infonce import _as_inexact, _check_same_shape, _contrastive_nll, infonce
from advjax.losses.spec import Loss, LossInputs, LossValue
from advjax.scores import l2_normalize, pair_scores
from advjax.settings import Setting, non_negative, one_of, positive


def bias_margin(pos_bias_cos: ArrayLike) -> jax.Array:
    """Bias-aware angular margin ``M_ui = arccos(y_b(u, i))`` from the popularity branch.

    ``y_b(u, i)`` is the cosine the popularity-only branch gives the positive pair. A
    pair that popularity alone explains well (cosine near 1) gets a margin near 0; a
    pair it cannot explain gets a large one. Inputs are clipped into [-1, 1] first,
    so rounding in a cosine of unit vectors (e.g. 1.0000001) cannot give NaN. The
    margin is meant as a constant for the main loss: ``bc_loss`` stops its gradient.

    Args:
      pos_bias_cos: Popularity-branch cosine ``y_b(u, i)`` of each positive pair. Any
        shape, usually [batch].

    Returns:
      The margin in radians, in [0, pi], same shape as ``pos_bias_cos``.

    References:
      A. Zhang et al., `Incorporating Bias-aware Margins into Contrastive Loss for
      Collaborative Filtering <https://arxiv.org/abs/2210.11054>`_, NeurIPS 2022,
      Sec. 3 (bias degree of an interaction, ``theta_hat_ui = arccos(y_b(u, i))``).
    """
    (bias_cos,) = _as_inexact(pos_bias_cos)
    return jnp.arccos(jnp.clip(bias_cos, -1.0, 1.0))


def bc_loss(
    pos_cos: ArrayLike,
    neg_cos: ArrayLike,
    margin: ArrayLike,
    *,
    tau: float,
    eps: float = 1e-7,
) -> jax.Array:
    """BC loss (the main-branch term) per example.

    Computes, in log space,
    ``-log(e^{c+ / tau} / (e^{c+ / tau} + sum_j e^{neg_cos_j / tau}))`` with
    ``c+ = cos(min(theta_ui + M_ui, pi))``, ``theta_ui = arccos(pos_cos)``: the positive
    must beat the negatives even after its angle to the user is widened by the margin.
    Capping the angle at pi is the paper's ``M_ui = min(margin, pi - theta_ui)``, which
    keeps ``c+`` monotone in ``theta_ui``. With ``margin = 0`` the loss is exactly
    ``infonce(pos_cos / tau, neg_cos / tau)`` (for ``pos_cos`` inside the clip below).

    ``c+`` is formed by angle addition, ``cos(theta) cos(M) - sin(theta) sin(M)``, so no
    ``arccos`` is taken. Its derivative in ``pos_cos`` is still
    ``sin(theta + M) / sin(theta)``, infinite at ``pos_cos = +-1`` whenever ``M > 0``, so
    ``pos_cos`` is clipped into ``[-1 + eps, 1 - eps]`` (strictly inside (-1, 1) in the
    input dtype) before use, as the public code does with ``eps = 1e-7``. The gradient
    is then finite everywhere and 0 for inputs beyond the clip.

    The margin comes from the popularity branch and is treated as a constant: its
    gradient is stopped here, so the main loss never trains that branch. The branch
    is trained by its own loss, ``infonce(pos_bias_cos / tau2, neg_bias_cos / tau2)``
    over the same negatives, where ``*_bias_cos`` are cosines between popularity-only
    embeddings (in the public code, one embedding per distinct training-interaction
    count, for users and for items); see ``bias_margin`` for the paper's margin. (The
    public BC-Loss and AdvInfoNCE code instead passes ``margin = 1 - sigmoid(<e_u, e_i>)``
    with the raw inner product of the unnormalised popularity embeddings, in (0, 1).)

    Args:
      pos_cos: Cosine ``cos(u, i)`` of each example's positive item, not divided by
        the temperature. Shape [batch].
      neg_cos: Cosines ``cos(u, j)`` of the sampled negatives. Shape [batch, n_neg],
        n_neg >= 1.
      margin: Angular margin ``M_ui`` in radians of each positive pair (e.g.
        ``bias_margin(pos_bias_cos)``). Shape [batch]. Clipped into [0, pi]; its
        gradient is stopped.
      tau: Temperature ``tau1 > 0`` of the main branch.
      eps: Clip distance of ``pos_cos`` from +-1, in (0, 1).

    Returns:
      The loss of each example, shape [batch]. Reduce it (e.g. mean) yourself.

    Raises:
      ValueError: if the shapes do not match the above, or ``tau`` or ``eps`` is a
        concrete value out of range.

    References:
      A. Zhang et al., `Incorporating Bias-aware Margins into Contrastive Loss for
      Collaborative Filtering <https://arxiv.org/abs/2210.11054>`_, NeurIPS 2022,
      Sec. 3 (popularity bias extractor, bias-aware margin and BC loss).
    """
    pos, neg, margin = _as_inexact(pos_cos, neg_cos, margin)
    _check_cos_shapes(pos, neg)
    _check_same_shape("margin", margin, "pos_cos", pos)
    if isinstance(tau, int | float) and not tau > 0:
        raise ValueError(f"tau must be > 0; got tau={tau}.")
    if isinstance(eps, int | float) and not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1); got eps={eps}.")

    one, zero = jnp.ones((), pos.dtype), jnp.zeros((), pos.dtype)
    # 1 - eps can round to 1 in float32 (eps < 6e-8): keep the bound strictly below 1.
    hi = jnp.minimum(one - jnp.asarray(eps, pos.dtype), jnp.nextafter(one, zero))
    cos_theta = jnp.clip(pos, -hi, hi)
    sin_theta = jnp.sqrt((1.0 - cos_theta) * (1.0 + cos_theta))
    margin = jnp.clip(jax.lax.stop_gradient(margin), 0.0, math.pi)
    cos_m, sin_m = jnp.cos(margin), jnp.sin(margin)
    # theta + M >= pi  <=>  cos(theta) <= cos(pi - M) = -cos(M): the angle is capped at pi.
    shifted = jnp.where(cos_theta + cos_m <= 0.0, -one, cos_theta * cos_m - sin_theta * sin_m)
    tau = jnp.asarray(tau, pos.dtype)
    return _contrastive_nll(shifted / tau, neg / tau)


# Training with BC loss. Its popularity branch is a pair of CF parameter groups,
# "pop_user" [user levels, d] and "pop_item" [item levels, d], indexed by the popularity
# level of a user or item (popularity_levels). The first --bc_pop_epochs epochs
# train the branch alone on its InfoNCE; then the branch rests and the main tables
# train on the margin loss.
_BRANCH = ("pop_user", "pop_item")


def popularity_levels(train, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense ranks of the training degrees: equal degree, equal level.

    The popularity branch sees a user or an item only through its number of training
    interactions, one embedding per distinct count (level 0 = the lowest count present,
    e.g. 0 for items never trained on).

    Args:
      train: the split's training pairs (advjax.data.Interactions: `degrees()` [U] and
        `items` [nnz]).
      n_items: number of items.

    Returns:
      (user_level int32 [U], item_level int32 [I]); the level counts are ``max + 1``
      of each.
    """
    user_degree = train.degrees()
    item_degree = train.item_degrees(n_items)
    return _dense_rank(user_degree), _dense_rank(item_degree)


def _dense_rank(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1].reshape(-1).astype(np.int32)


def _prepare(data) -> dict:
    user_level, item_level = popularity_levels(data.train, data.n_items)
    return {"user_level": user_level, "item_level": item_level}


def _init_params(cfg, key: jax.Array, loss_data: dict) -> dict:
    n_user_levels = int(loss_data["user_level"].max()) + 1
    n_item_levels = int(loss_data["item_level"].max()) + 1
    branch = init_embeddings(key, n_user_levels, n_item_levels, cfg.emb_dim)
    return {"pop_user": branch["user"], "pop_item": branch["item"]}


def _branch_phase(cfg, epoch: jax.Array) -> jax.Array:
    return epoch < cfg.bc_pop_epochs


def _trains(cfg, epoch: jax.Array) -> dict:
    phase = _branch_phase(cfg, epoch)
    return {"user": ~phase, "item": ~phase, "pop_user": phase, "pop_item": phase}


def _value(cfg, inputs: LossInputs) -> LossValue:
    """The branch's InfoNCE in its phase, the margin loss after."""
    params, levels = inputs.cf_params, inputs.loss_data
    raw_users = params["pop_user"][levels["user_level"][inputs.users]]
    raw_items = params["pop_item"][levels["item_level"]]
    pop_users, pop_items = l2_normalize(raw_users), l2_normalize(raw_items)
    pos_bias = pair_scores(pop_users, pop_items, inputs.pos[:, None])[:, 0]
    neg_bias = pair_scores(pop_users, pop_items, inputs.negs)
    branch = infonce(pos_bias / cfg.bc_tau_bias, neg_bias / cfg.bc_tau_bias)
    if cfg.bc_margin == "arccos":
        margin = bias_margin(pos_bias)
    else:
        margin = 1.0 - jax.nn.sigmoid(pair_scores(raw_users, raw_items, inputs.pos[:, None])[:, 0])
    main = bc_loss(inputs.pos_cos, inputs.neg_cos, margin, tau=cfg.tau)
    return LossValue(jnp.where(_branch_phase(cfg, inputs.epoch), branch, main))


LOSS = Loss(
    name="bc_loss",
    value=_value,
    settings=(
        Setting(
            "bc_tau_bias", 0.1, "BC loss: temperature tau2 of the popularity branch.", positive
        ),
        Setting(
            "bc_margin",
            "arccos",
            "BC loss margin: arccos (the paper: arccos of the branch's cosine) or sigmoid (the "
            "public code: 1 - sigmoid of the branch's raw inner product).",
            one_of("arccos", "sigmoid"),
        ),
        Setting(
            "bc_pop_epochs",
            5,
            "BC loss: first epochs train only the popularity branch, which then stays fixed.",
            non_negative,
        ),
    ),
    prepare=_prepare,
    init_params=_init_params,
    trains=_trains,
)
