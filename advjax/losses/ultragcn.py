"""UltraGCN's constraint loss L_L (Mao et al., CIKM 2021): degree-weighted binary
cross-entropy on raw dot products of the layer-0 tables, one positive and N sampled
negatives per example.

`--loss=ultragcn` with `--backbone=ultragcn` is UltraGCN's objective
``L_L + gamma ||theta||^2 / 2 + lambda L_I``: this module is L_L; the backbone
(advjax/models/ultragcn.py) adds the other two terms to every step, whatever the loss.

Scale. The public code sums L_L over a batch; our trainer minimises the mean of the
per-example values, so our objective is the public batch objective divided by the
batch size B (the backbone divides its norm penalty by B as well). The weights
`--ultragcn_w1..w4` and `--ultragcn_negative_weight` therefore mean what the public
configs' ``w1..w4`` and ``negative_weight`` mean, and `--lr` what its ``learning_rate``
means: Adam's step does not depend on the objective's scale, except through its
epsilon (1e-8 in both), which weighs B times more against our B-times-smaller
gradients. `--n_neg` is its ``negative_num``. Two sampling differences stay: our
negatives never include the user's training items (its ``sampling_sift_pos=yes``; its
configs mostly say no), and our positives are user-balanced (SPEC §3), where it
shuffles the training pairs.

The public code leaves its positive weight undefined when ``w2 = 0`` (a misspelt
variable); here every weight is the formula below, for any values.

The loss trains raw dot products, which only a backbone scoring by them ranks by
(UltraGCN scores by dot product under this loss); MF and LightGCN score by cosine, so
the loss refuses them (`check`) rather than train one score and evaluate another.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from advjax.losses.infonce import _as_inexact, _check_logit_shapes, _check_same_shape
from advjax.losses.spec import Loss, LossInputs, LossValue
from advjax.scores import pair_scores
from advjax.settings import Setting, non_negative

# The backbone whose scores are the raw products this loss trains (its module's name).
_BACKBONE = "ultragcn"


def degree_weights(user_degree: ArrayLike, item_degree: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The factors of UltraGCN's beta_ui = (1 / d_u) sqrt((d_u + 1) / (d_i + 1)).

    Args:
      user_degree: training items per user. Shape [U].
      item_degree: training users per item. Shape [I].

    Returns:
      (beta_user float64 [U] = sqrt(d_u + 1) / d_u, beta_item float64 [I] =
      1 / sqrt(d_i + 1)); beta_ui = beta_user[u] * beta_item[i]. A user without
      training items gets 0 (the public code divides by zero there; such a user is
      never in a batch).

    References:
      K. Mao et al., `UltraGCN: Ultra Simplification of Graph Convolutional Networks
      for Recommendation <https://arxiv.org/abs/2110.15114>`_, CIKM 2021: the
      constraint loss's weights beta (the public code's ``constraint_mat``).
    """
    d_user = np.asarray(user_degree, np.float64)
    d_item = np.asarray(item_degree, np.float64)
    beta_user = np.divide(np.sqrt(d_user + 1), d_user, out=np.zeros_like(d_user), where=d_user > 0)
    return beta_user, 1 / np.sqrt(d_item + 1)


def constraint_loss(
    pos_logits: ArrayLike,
    neg_logits: ArrayLike,
    pos_beta: ArrayLike,
    neg_beta: ArrayLike,
    *,
    w1: float,
    w2: float,
    w3: float,
    w4: float,
    negative_weight: float = 1.0,
) -> jax.Array:
    """UltraGCN's L_L per example.

    ``(w1 + w2 beta_ui) BCE(s_ui, 1) + negative_weight * mean_j (w3 + w4 beta_uj)
    BCE(s_uj, 0)``, with BCE(s, 1) = softplus(-s) and BCE(s, 0) = softplus(s): binary
    cross-entropy with logits, finite for any score.

    Args:
      pos_logits: raw score s_ui of each example's positive. Shape [batch].
      neg_logits: raw scores s_uj of its sampled negatives. Shape [batch, n_neg].
      pos_beta: beta_ui of each positive. Shape [batch].
      neg_beta: beta_uj of each negative. Shape [batch, n_neg].
      w1, w2: the positive's weight w1 + w2 beta_ui.
      w3, w4: each negative's weight w3 + w4 beta_uj.
      negative_weight: the negatives' mean term's weight.

    Returns:
      The loss of each example, shape [batch].

    Raises:
      ValueError: if the shapes are not [batch] and [batch, n_neg], or a beta's shape
        is not its logits'.

    References:
      K. Mao et al., UltraGCN, CIKM 2021: the BCE objective L_O and the constraint loss
      L_C with negative sampling, merged by the weights w1..w4 in its public code's
      ``cal_loss_L``.
    """
    pos, neg, pos_b, neg_b = _as_inexact(pos_logits, neg_logits, pos_beta, neg_beta)
    _check_logit_shapes(pos, neg)
    _check_same_shape("pos_beta", pos_b, "pos_logits", pos)
    _check_same_shape("neg_beta", neg_b, "neg_logits", neg)
    pos_term = (w1 + w2 * pos_b) * jax.nn.softplus(-pos)
    neg_term = jnp.mean((w3 + w4 * neg_b) * jax.nn.softplus(neg), axis=-1)
    return pos_term + negative_weight * neg_term


def _prepare(data) -> dict:
    beta_user, beta_item = degree_weights(
        data.train.degrees(), data.train.item_degrees(data.n_items)
    )
    return {"beta_user": beta_user, "beta_item": beta_item}


def _value(cfg, inputs: LossInputs) -> LossValue:
    # UltraGCN has no propagation: its scores are the layer-0 rows' raw products.
    user_rows = inputs.cf_params["user"][inputs.users]
    items = inputs.cf_params["item"]
    beta_user = inputs.loss_data["beta_user"][inputs.users]
    beta_item = inputs.loss_data["beta_item"]
    per_sample = constraint_loss(
        jnp.sum(user_rows * items[inputs.pos], axis=-1),
        pair_scores(user_rows, items, inputs.negs),
        beta_user * beta_item[inputs.pos],
        beta_user[:, None] * beta_item[inputs.negs],
        w1=cfg.ultragcn_w1,
        w2=cfg.ultragcn_w2,
        w3=cfg.ultragcn_w3,
        w4=cfg.ultragcn_w4,
        negative_weight=cfg.ultragcn_negative_weight,
    )
    return LossValue(per_sample)


def _check(cfg) -> str | None:
    backbone = cfg.model_spec.name
    if backbone != _BACKBONE:
        return (
            f"--loss=ultragcn trains raw dot products, which only --backbone={_BACKBONE} "
            f"scores by; --backbone={backbone} scores by cosine"
        )
    return None


LOSS = Loss(
    name="ultragcn",
    value=_value,
    check=_check,
    prepare=_prepare,
    settings=(
        Setting(
            "ultragcn_w1",
            1e-8,
            "ultragcn loss: w1 of the positive's weight w1 + w2 beta_ui.",
            non_negative,
        ),
        Setting(
            "ultragcn_w2",
            1.0,
            "ultragcn loss: w2 of the positive's weight w1 + w2 beta_ui.",
            non_negative,
        ),
        Setting(
            "ultragcn_w3",
            1e-8,
            "ultragcn loss: w3 of a negative's weight w3 + w4 beta_uj.",
            non_negative,
        ),
        Setting(
            "ultragcn_w4",
            1.0,
            "ultragcn loss: w4 of a negative's weight w3 + w4 beta_uj.",
            non_negative,
        ),
        Setting(
            "ultragcn_negative_weight",
            300.0,
            "ultragcn loss: weight of the mean over the --n_neg negatives' BCE terms (its "
            "configs' negative_weight).",
            non_negative,
        ),
    ),  # fmt: skip
)
