"""The models --backbone can name: the backbones trained by SGD steps of a loss
(`BACKBONES`: one entry per backbone module's BACKBONE spec) and the models fitted by
their own solver (`FITTED`: one entry per such module's MODEL spec).

Adding a backbone: write advjax/models/<name>.py with its forward pass and a
`BACKBONE = Backbone(...)` (advjax/models/backbone.py), then import it here and add it
to `_SPECS` (WORKSPACE.md, "Adding a backbone"). Nothing under advjax/train/ or the
evaluation changes: its flags, parameters, graph and representations come from the spec.
A fitted model (advjax/models/fitted.py: EASE, iALS) goes into `_FITTED` the same way;
advjax/train/fit.py runs it.
"""

from __future__ import annotations

from advjax.errors import ConfigError
from advjax.models.backbone import Backbone
from advjax.models.ease import MODEL as EASE
from advjax.models.fitted import Fitted
from advjax.models.ials import MODEL as IALS
from advjax.models.lightgcn import BACKBONE as LIGHTGCN
from advjax.models.mf import BACKBONE as MF
from advjax.models.ultragcn import BACKBONE as ULTRAGCN
from advjax.models.vgae import BACKBONE as VGAE
from advjax.settings import Setting, merged_settings

_SPECS = (MF, LIGHTGCN, ULTRAGCN, VGAE)
_FITTED = (EASE, IALS)

BACKBONES: dict[str, Backbone] = {spec.name: spec for spec in _SPECS}
FITTED: dict[str, Fitted] = {spec.name: spec for spec in _FITTED}
MODELS: dict[str, Backbone | Fitted] = {**BACKBONES, **FITTED}


def backbone_settings() -> tuple[Setting, ...]:
    """Every registered model's settings, each name once (shared names must agree)."""
    return merged_settings((*_SPECS, *_FITTED), "models")


def legacy_backbone(saved: dict) -> str:
    """The backbone of a configuration saved before --backbone existed (no "backbone"
    key, or an empty one): the one registered backbone that claims it."""
    claims = [name for name, spec in BACKBONES.items() if spec.claims_legacy(saved)]
    if len(claims) != 1:
        raise ConfigError(
            f"cannot tell the backbone of a configuration without --backbone "
            f"(n_layers={saved.get('n_layers')!r}); claimed by {claims or 'none'}"
        )
    return claims[0]
