"""The losses --loss can name: one entry per loss module's LOSS spec.

Adding a loss: write advjax/losses/<name>.py with its math and a `LOSS = Loss(...)`
(advjax/losses/spec.py), then import its LOSS here and add it to `_SPECS`. Nothing
under advjax/train/ changes: its flags, state, parameter groups and adversary come
from the spec.
"""

from __future__ import annotations

from advjax.losses.adap_tau import LOSS as ADAP_TAU
from advjax.losses.adv_infonce import LOSS as ADV_INFONCE
from advjax.losses.bc_loss import LOSS as BC_LOSS
from advjax.losses.bpr import LOSS as BPR
from advjax.losses.ccl import LOSS as CCL
from advjax.losses.infonce import LOSS as INFONCE
from advjax.losses.spec import Loss
from advjax.losses.ultragcn import LOSS as ULTRAGCN
from advjax.settings import Setting, merged_settings

_SPECS = (BPR, INFONCE, ADV_INFONCE, CCL, BC_LOSS, ADAP_TAU, ULTRAGCN)

LOSSES: dict[str, Loss] = {spec.name: spec for spec in _SPECS}


def get_loss(name: str) -> Loss:
    """The spec of loss `name`; KeyError for a name not registered."""
    return LOSSES[name]


def all_settings() -> tuple[Setting, ...]:
    """Every registered loss's settings, each name once (shared names must agree)."""
    return merged_settings(_SPECS, "losses")
