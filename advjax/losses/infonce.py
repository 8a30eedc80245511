"""InfoNCE (sampled softmax) over one positive and N sampled negatives per example."""

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from advjax.losses.spec import Loss, LossInputs, LossValue


def _as_inexact(*xs: ArrayLike) -> tuple[jax.Array, ...]:
    """Converts inputs to arrays of one common inexact dtype (ints become floats)."""
    arrays = tuple(jnp.asarray(x) for x in xs)
    dtype = jnp.result_type(*arrays)
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.result_type(float)
    return tuple(a.astype(dtype) for a in arrays)


def _check_logit_shapes(
    pos_logits: jax.Array,
    neg_logits: jax.Array,
    names: tuple[str, str] = ("pos_logits", "neg_logits"),
) -> None:
    """Raises ValueError unless pos is [B] and neg is [B, N] with N >= 1.

    ``names`` are the two arguments' names in the messages (cosine losses pass
    ``("pos_cos", "neg_cos")``).
    """
    pos, neg = names
    pos_shape, neg_shape = jnp.shape(pos_logits), jnp.shape(neg_logits)
    if len(pos_shape) != 1 or len(neg_shape) != 2 or pos_shape[0] != neg_shape[0]:
        raise ValueError(
            f"{pos} must have shape [batch] and {neg} shape [batch, n_neg] with the "
            f"same batch; got {pos}.shape={pos_shape}, {neg}.shape={neg_shape}."
        )
    if neg_shape[1] == 0:
        raise ValueError(
            f"{neg} needs at least one negative per example; got "
            f"{pos}.shape={pos_shape}, {neg}.shape={neg_shape}."
        )


def _check_same_shape(name: str, x: ArrayLike, like_name: str, like: ArrayLike) -> None:
    """Raises ValueError unless x has the shape of `like` (the names are the arguments')."""
    if jnp.shape(x) != jnp.shape(like):
        raise ValueError(
            f"{name} must have the same shape as {like_name}; got "
            f"{name}.shape={jnp.shape(x)}, {like_name}.shape={jnp.shape(like)}."
        )


def _contrastive_nll(pos_logits: jax.Array, neg_logits: jax.Array) -> jax.Array:
    """Returns logsumexp([pos, negs]) - pos, row-wise.

    Written as softplus(logsumexp(negs) - pos), which is the same quantity: it never
    forms e^{logit}, and it keeps full relative precision when the positive dominates
    (loss and d loss / d pos near 0), where subtracting pos from the joint logsumexp
    would cancel.
    """
    return jax.nn.softplus(jax.nn.logsumexp(neg_logits, axis=-1) - pos_logits)


def infonce(pos_logits: ArrayLike, neg_logits: ArrayLike) -> jax.Array:
    """InfoNCE (sampled softmax) loss per example.

    Computes ``-log(e^{pos} / (e^{pos} + sum_j e^{neg_j}))`` for every example, in log
    space, so it stays finite in float32 for logits such as ``cos / tau`` with a small
    temperature ``tau``.

    Args:
      pos_logits: Logit of each example's positive item, already divided by the
        temperature. Shape [batch].
      neg_logits: Logits of the sampled negatives, already divided by the temperature.
        Shape [batch, n_neg], n_neg >= 1.

    Returns:
      The loss of each example, shape [batch]. Reduce it (e.g. mean) yourself.

    Raises:
      ValueError: if the shapes are not [batch] and [batch, n_neg].

    References:
      A. van den Oord et al., `Representation Learning with Contrastive Predictive
      Coding <https://arxiv.org/abs/1807.03748>`_, 2018.

      A. Zhang et al., `Empowering Collaborative Filtering with Principled Adversarial
      Contrastive Loss <https://arxiv.org/abs/2310.18700>`_, NeurIPS 2023, Eq. 4.
    """
    pos, neg = _as_inexact(pos_logits, neg_logits)
    _check_logit_shapes(pos, neg)
    return _contrastive_nll(pos, neg)


def _value(cfg, inputs: LossInputs) -> LossValue:
    return LossValue(infonce(inputs.pos_cos / cfg.tau, inputs.neg_cos / cfg.tau))


LOSS = Loss(name="infonce", value=_value)
