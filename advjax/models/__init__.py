"""Backbones (MF, LightGCN) and hardness models."""

from advjax.models.hardness import hardness_logits, init_hardness
from advjax.models.lightgcn import lightgcn_embed, lightgcn_rows
from advjax.models.mf import init_embeddings
from advjax.models.propagation import prepare_graph, propagate, resolve_method

__all__ = [
    "hardness_logits",
    "init_embeddings",
    "init_hardness",
    "lightgcn_embed",
    "lightgcn_rows",
    "prepare_graph",
    "propagate",
    "resolve_method",
]
