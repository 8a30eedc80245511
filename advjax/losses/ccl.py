"""CCL: the cosine contrastive loss of SimpleX, with a margin on the negatives."""

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from advjax.losses.infonce import _as_inexact, _check_logit_shapes
from advjax.losses.spec import Loss, LossInputs, LossValue
from advjax.settings import Setting, positive


def _check_cos_shapes(pos_cos: jax.Array, neg_cos: jax.Array) -> None:
    """Raises ValueError unless pos_cos is [B] and neg_cos is [B, N] with N >= 1."""
    _check_logit_shapes(pos_cos, neg_cos, names=("pos_cos", "neg_cos"))


def ccl(
    pos_cos: ArrayLike,
    neg_cos: ArrayLike,
    *,
    margin: float,
    neg_weight: float,
) -> jax.Array:
    """Cosine contrastive loss (CCL) per example.

    Computes ``(1 - pos_cos) + neg_weight / N * sum_j max(0, neg_cos_j - margin)``: the
    positive is pulled towards cosine 1, and only negatives whose cosine exceeds
    ``margin`` are pushed away. The inputs are plain cosines, not divided by a
    temperature. For ``margin >= 0`` this equals the public SimpleX / AdvInfoNCE code,
    which clamps ``neg_cos - margin`` into [0, 1] (the upper clamp can only bind for a
    negative margin).

    Args:
      pos_cos: Cosine ``cos(u, i)`` of each example's positive item. Shape [batch].
      neg_cos: Cosines ``cos(u, j)`` of the sampled negatives. Shape [batch, n_neg],
        n_neg >= 1.
      margin: Threshold ``m`` below which a negative costs nothing. A negative's term
        is 0 for every ``margin >= 1``.
      neg_weight: Weight ``w >= 0`` of the averaged negative term.

    Returns:
      The loss of each example, shape [batch]. Reduce it (e.g. mean) yourself.

    Raises:
      ValueError: if the shapes are not [batch] and [batch, n_neg], or ``neg_weight``
        is a concrete value that is not >= 0.

    References:
      K. Mao et al., `SimpleX: A Simple and Strong Baseline for Collaborative Filtering
      <https://arxiv.org/abs/2109.12613>`_, CIKM 2021, Sec. 3.1, Eq. 1.
    """
    pos, neg = _as_inexact(pos_cos, neg_cos)
    _check_cos_shapes(pos, neg)
    if isinstance(neg_weight, int | float) and not neg_weight >= 0:
        raise ValueError(f"neg_weight must be >= 0; got neg_weight={neg_weight}.")
    neg_term = jnp.mean(jax.nn.relu(neg - jnp.asarray(margin, neg.dtype)), axis=-1)
    return (1.0 - pos) + jnp.asarray(neg_weight, pos.dtype) * neg_term


def _margin_is_a_cosine(value) -> str | None:
    return None if -1.0 <= value <= 1.0 else "must be a cosine in [-1, 1]"


def _value(cfg, inputs: LossInputs) -> LossValue:
    loss = ccl(inputs.pos_cos, inputs.neg_cos, margin=cfg.ccl_margin, neg_weight=cfg.ccl_neg_weight)
    return LossValue(loss)


LOSS = Loss(
    name="ccl",
    value=_value,
    settings=(
        Setting("ccl_margin", 0.4, "CCL: margin m on the negatives' cosines.", _margin_is_a_cosine),
        Setting("ccl_neg_weight", 1.0, "CCL: weight w of the mean negative term.", positive),
    ),
)
