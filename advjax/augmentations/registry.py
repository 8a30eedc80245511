"""The augmentations --augment can name ("none" is the plain LightGCN step)."""

from __future__ import annotations

from advjax.augmentations.ncl import AUGMENTATION as NCL
from advjax.augmentations.sgl import AUGMENTATION as SGL
from advjax.augmentations.spec import Augmentation
from advjax.augmentations.xsimgcl import AUGMENTATION as XSIMGCL
from advjax.losses.spec import Setting

_SPECS = (SGL, NCL, XSIMGCL)

AUGMENTATIONS: dict[str, Augmentation] = {spec.name: spec for spec in _SPECS}


def augmentation_settings() -> tuple[Setting, ...]:
    """Every registered augmentation's settings, each name once (shared names agree)."""
    settings: dict[str, Setting] = {}
    for spec in _SPECS:
        for setting in spec.settings:
            known = settings.setdefault(setting.name, setting)
            if known.default != setting.default:
                raise ValueError(f"augmentations disagree on the default of {setting.name!r}")
    return tuple(settings.values())
