"""BPR: Bayesian Personalised Ranking, the pairwise log-sigmoid ranking loss."""

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from advjax.losses.infonce import _as_inexact, _check_logit_shapes
from advjax.losses.spec import Loss, LossInputs, LossValue


def bpr(pos_logits: ArrayLike, neg_logits: ArrayLike) -> jax.Array:
    """BPR loss per example, averaged over the sampled negatives.

    Computes ``mean_j -log sigmoid(pos - neg_j)`` as ``mean_j softplus(neg_j - pos)``,
    which never rounds ``sigmoid`` to 0 or 1: it stays finite and keeps its gradient
    for any score gap. With one negative (``n_neg = 1``) this is Rendle et al.'s
    criterion. (Public PyTorch code often writes ``-log(sigmoid(x) + 1e-10)``, which
    caps the loss near 23 and zeroes its gradient for gaps below about -23; this
    function does not.)

    Args:
      pos_logits: Score ``s(u, i)`` of each example's positive item (a cosine, an inner
        product, or either over a temperature). Shape [batch].
      neg_logits: Scores ``s(u, j)`` of the sampled negatives, on the same scale. Shape
        [batch, n_neg], n_neg >= 1.

    Returns:
      The loss of each example, shape [batch]. Reduce it (e.g. mean) yourself.

    Raises:
      ValueError: if the shapes are not [batch] and [batch, n_neg].

    References:
      S. Rendle et al., `BPR: Bayesian Personalized Ranking from Implicit Feedback
      <https://arxiv.org/abs/1205.2618>`_, UAI 2009, Sec. 4.1 (BPR-Opt, the
      ``ln sigma(x_uij)`` term).
    """
    pos, neg = _as_inexact(pos_logits, neg_logits)
    _check_logit_shapes(pos, neg)
    return jnp.mean(jax.nn.softplus(neg - pos[:, None]), axis=-1)


def _value(cfg, inputs: LossInputs) -> LossValue:
    return LossValue(bpr(inputs.pos_cos / cfg.tau, inputs.neg_cos / cfg.tau))


LOSS = Loss(name="bpr", value=_value)
