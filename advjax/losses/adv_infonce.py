"""AdvInfoNCE: InfoNCE whose negatives are re-weighted by an adversarial hardness model."""

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from advjax.losses.hardness import KINDS, hardness_logits, init_hardness
from advjax.losses.infonce import (
    _as_inexact,
    _check_logit_shapes,
    _check_same_shape,
    _contrastive_nll,
)
from advjax.losses.spec import Adversary, Loss, LossInputs, LossValue
from advjax.settings import Setting, one_of, positive


def _check_hardness_shape(hardness_logits: jax.Array) -> None:
    shape = jnp.shape(hardness_logits)
    if len(shape) < 1 or shape[-1] == 0:
        raise ValueError(
            "hardness_logits must have shape [..., n_neg] with n_neg >= 1; got "
            f"hardness_logits.shape={shape}."
        )


def hardness_delta(hardness_logits: ArrayLike) -> jax.Array:
    """Hardness offsets ``delta_j = log(N * p(j))`` with ``p = softmax(hardness_logits)``.

    Computed as ``log N + log_softmax`` so it stays finite for large raw scores. The
    offsets are 0 exactly when the hardness is uniform, and ``mean_j e^{delta_j} = 1``
    always, so they re-weight the negatives without changing their total weight.

    Args:
      hardness_logits: Raw hardness scores ``g(u, j)`` of the sampled negatives.
        Shape [batch, n_neg] (any leading axes are allowed), n_neg >= 1.

    Returns:
      ``delta``, same shape and dtype as ``hardness_logits``.

    Raises:
      ValueError: if the last axis is missing or empty.

    References:
      A. Zhang et al., `Empowering Collaborative Filtering with Principled Adversarial
      Contrastive Loss <https://arxiv.org/abs/2310.18700>`_, NeurIPS 2023, Eq. 28-29.
    """
    (hardness,) = _as_inexact(hardness_logits)
    _check_hardness_shape(hardness)
    n_neg = hardness.shape[-1]
    return jax.nn.log_softmax(hardness, axis=-1) + jnp.asarray(math.log(n_neg), hardness.dtype)


def hardness_kl(hardness_logits: ArrayLike) -> jax.Array:
    """KL divergence ``KL(P0 || P)`` from the uniform distribution to the hardness one.

    ``P0`` is uniform over the N sampled negatives and ``P = softmax(hardness_logits)``;
    the divergence equals ``-mean_j delta_j``. It is >= 0 and 0 iff ``P`` is uniform; the
    adversarial budget (E_adv epochs) bounds how far it can grow.

    Args:
      hardness_logits: Raw hardness scores ``g(u, j)``. Shape [batch, n_neg] (any
        leading axes are allowed), n_neg >= 1.

    Returns:
      The divergence of each row, shape [batch] (``hardness_logits.shape[:-1]``).

    Raises:
      ValueError: if the last axis is missing or empty.

    References:
      A. Zhang et al., `Empowering Collaborative Filtering with Principled Adversarial
      Contrastive Loss <https://arxiv.org/abs/2310.18700>`_, NeurIPS 2023, Eq. 16.
    """
    return -jnp.mean(hardness_delta(hardness_logits), axis=-1)


def adv_infonce(
    pos_logits: ArrayLike,
    neg_logits: ArrayLike,
    hardness_logits: ArrayLike,
    *,
    k_neg: float = 1.0,
) -> jax.Array:
    """AdvInfoNCE loss per example.

    Computes, in log space,
    ``-log(e^{pos} / (e^{pos} + k_neg * sum_j e^{delta_j} e^{neg_j}))`` with
    ``delta = hardness_delta(hardness_logits)``. Constant hardness gives ``delta = 0``
    and InfoNCE with the negatives' weight multiplied by ``k_neg``.

    Gradients flow into ``hardness_logits`` as well: the CF model minimises this loss
    and the adversary maximises the same value by gradient ascent on its own
    parameters. Freeze whichever side is not being trained outside this function.

    Args:
      pos_logits: Logit ``s(u, i)`` of each example's positive item, already divided by
        the temperature. Shape [batch].
      neg_logits: Logits ``s(u, j)`` of the sampled negatives, already divided by the
        temperature. Shape [batch, n_neg], n_neg >= 1.
      hardness_logits: Raw hardness scores ``g(u, j)`` of the same negatives. Shape
        [batch, n_neg].
      k_neg: Positive weight K of the negative term, a surrogate for the full negative
        set (64 in the paper).

    Returns:
      The loss of each example, shape [batch]. Reduce it (e.g. mean) yourself.

    Raises:
      ValueError: if the shapes do not match the above, or ``k_neg`` is a concrete
        value that is not > 0.

    References:
      A. Zhang et al., `Empowering Collaborative Filtering with Principled Adversarial
      Contrastive Loss <https://arxiv.org/abs/2310.18700>`_, NeurIPS 2023, Eq. 7 and
      Algorithm 1.
    """
    pos, neg, hardness = _as_inexact(pos_logits, neg_logits, hardness_logits)
    _check_logit_shapes(pos, neg)
    _check_same_shape("hardness_logits", hardness, "neg_logits", neg)
    if isinstance(k_neg, int | float) and not k_neg > 0:
        raise ValueError(f"k_neg must be > 0; got k_neg={k_neg}.")
    log_k = jnp.log(jnp.asarray(k_neg, pos.dtype))
    return _contrastive_nll(pos, neg + hardness_delta(hardness) + log_k)


# Training with AdvInfoNCE: how the hardness logits of a batch are set
# (--hardness_strategy, Fig. 2b/4c of the paper). "adversarial" and "reverse" train a
# hardness model (--hardness) in adversarial passes, ascending or descending the loss;
# "random" draws logits U[0, 1) per negative from the batch key (InfoNCE-Rand); "none"
# uses delta = 0 (with K = 1 that is InfoNCE). The last two train no model.
STRATEGIES = ("adversarial", "reverse", "random", "none")
_TRAINED = ("adversarial", "reverse")


def hardness_for(cfg, inputs: LossInputs) -> jax.Array:
    """[B, N] hardness logits of the batch's negatives under cfg.hardness_strategy."""
    if cfg.hardness_strategy == "none":
        return jnp.zeros(inputs.negs.shape, jnp.float32)
    if cfg.hardness_strategy == "random":
        if inputs.key is None:
            raise ValueError("the random hardness strategy needs a key")
        return jax.random.uniform(inputs.key, inputs.negs.shape, jnp.float32)
    return hardness_logits(
        inputs.adv_params, cfg.hardness, inputs.users, inputs.negs, inputs.cf_params
    )


def _value(cfg, inputs: LossInputs) -> LossValue:
    hard = hardness_for(cfg, inputs)
    loss = adv_infonce(inputs.pos_cos / cfg.tau, inputs.neg_cos / cfg.tau, hard, k_neg=cfg.k_neg)
    return LossValue(loss, diagnostics={"kl": hardness_kl(hard)})


def _adversary(cfg) -> Adversary | None:
    if cfg.hardness_strategy not in _TRAINED:
        return None

    def init(key: jax.Array, n_users: int, n_items: int) -> dict:
        return init_hardness(
            key, cfg.hardness, n_users=n_users, n_items=n_items, cf_dim=cfg.emb_dim
        )

    return Adversary(init=init, ascent=cfg.hardness_strategy == "adversarial")


def _label(cfg) -> str:
    """ "adv_infonce-embed", "adv_infonce-mlp-reverse", "adv_infonce-random", ..."""
    label = "adv_infonce"
    if cfg.hardness_strategy in _TRAINED:
        label += f"-{cfg.hardness}"
    if cfg.hardness_strategy != "adversarial":
        label += f"-{cfg.hardness_strategy}"
    return label


LOSS = Loss(
    name="adv_infonce",
    value=_value,
    settings=(
        Setting(
            "hardness", "embed", "Hardness model of adv_infonce: embed or mlp.", one_of(*KINDS)
        ),
        Setting(
            "hardness_strategy",
            "adversarial",
            "How adv_infonce sets hardness: adversarial (the adversary maximises the loss), "
            "reverse (it minimises it: AdvInfoNCE-Reverse), random (logits drawn uniformly in "
            "[0, 1) per negative and step: InfoNCE-Rand), none (delta = 0).",
            one_of(*STRATEGIES),
        ),
        Setting(
            "k_neg", 64.0, "K, weight of the negative term of adv_infonce (paper: 64).", positive
        ),
    ),
    adversary=_adversary,
    hardness=hardness_for,
    label=_label,
)
