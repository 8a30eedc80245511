"""The augmentations --augment can name ("none" is the plain LightGCN step)."""

from __future__ import annotations

from advjax.augmentations.ncl import AUGMENTATION as NCL
from advjax.augmentations.sgl import AUGMENTATION as SGL
from advjax.augmentations.spec import Augmentation
from advjax.augmentations.xsimgcl import AUGMENTATION as XSIMGCL
from advjax.settings import Setting, merged_settings

_SPECS = (SGL, NCL, XSIMGCL)

AUGMENTATIONS: dict[str, Augmentation] = {spec.name: spec for spec in _SPECS}


def augmentation_settings() -> tuple[Setting, ...]:
    """Every registered augmentation's settings, each name once (shared names agree)."""
    return merged_settings(_SPECS, "augmentations")
