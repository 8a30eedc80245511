"""Backbones (advjax/models/registry.py: MF, LightGCN), their propagation paths and the
trained-model interface."""

from advjax.initializers import init_embeddings
from advjax.models.backbone import Backbone
from advjax.models.lightgcn import lightgcn_embed, lightgcn_rows
from advjax.models.propagation import prepare_graph, propagate, resolve_method
from advjax.models.registry import BACKBONES

__all__ = [
    "BACKBONES",
    "Backbone",
    "init_embeddings",
    "lightgcn_embed",
    "lightgcn_rows",
    "prepare_graph",
    "propagate",
    "resolve_method",
]
