"""Contrastive losses for collaborative filtering: pure, jit-able, per-example."""

from advjax.losses.adv_infonce import adv_infonce, hardness_delta, hardness_kl
from advjax.losses.infonce import infonce

__all__ = ["adv_infonce", "hardness_delta", "hardness_kl", "infonce"]
