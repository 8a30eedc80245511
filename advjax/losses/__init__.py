"""Contrastive losses for collaborative filtering: pure, jit-able, per-example."""

from advjax.losses.adap_tau import adap_tau_0, adap_tau_loss, adap_tau_user
from advjax.losses.adv_infonce import adv_infonce, hardness_delta, hardness_kl
from advjax.losses.bc_loss import bc_loss, bias_margin
from advjax.losses.bpr import bpr
from advjax.losses.ccl import ccl
from advjax.losses.infonce import infonce
from advjax.losses.ultragcn import constraint_loss, degree_weights

__all__ = [
    "adap_tau_0",
    "adap_tau_loss",
    "adap_tau_user",
    "adv_infonce",
    "bc_loss",
    "bias_margin",
    "bpr",
    "ccl",
    "constraint_loss",
    "degree_weights",
    "hardness_delta",
    "hardness_kl",
    "infonce",
]
