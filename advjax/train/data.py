"""From a split to the device arrays an epoch reads (`TrainData`): the training pairs,
the backbone's graph operand, what the loss and the augmentation prepare, and the
propagation path, resolved once. Below the epochs and steps, which read TrainData, and
below setup.py, which builds a run around it.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from advjax.data import SplitData, load_dataset
from advjax.data.graph import Graph, empty_graph, normalized_graph
from advjax.errors import ConfigError
from advjax.models.propagation import resolve_method
from advjax.sampling import TrainPairs, make_train_pairs
from advjax.train.config import TrainConfig


class TrainData(struct.PyTreeNode):
    """The device arrays an epoch reads, and how to propagate over them.

    Attributes:
      pairs: the training pairs.
      graph: the backbone's graph operand (its spec's prepare_graph); empty for a
        backbone that reads none (MF).
      backbone_data: the other arrays the backbone's spec prepared from the split ({}
        for most; UltraGCN: item neighbours and their weights), read by its extra_loss.
      loss_data: the arrays the loss's spec prepared from the split ({} for most;
        BC loss: popularity levels).
      aug_data: the arrays the augmentation prepared from the graph ({} for most;
        SGL: each entry's undirected edge).
      propagation: the resolved propagation path (static: part of the compiled code).
    """

    pairs: TrainPairs
    graph: Graph
    backbone_data: dict
    loss_data: dict
    aug_data: dict
    propagation: str = struct.field(pytree_node=False)


def load_split(cfg: TrainConfig) -> SplitData:
    """The split cfg names: --data_dir, else the embedded --dataset."""
    return load_dataset(
        cfg.dataset,
        cfg.data_dir or None,
        n_users=cfg.n_users or None,
        n_items=cfg.n_items or None,
        train_file=cfg.train_file or None,
    )


def make_train_data(cfg: TrainConfig, data: SplitData, *, on_mesh: bool = False) -> TrainData:
    """Device arrays of a split's training pairs, the graph operand of a backbone that
    reads one (its spec's prepare_graph), and what the backbone (its spec's prepare),
    the loss and the augmentation prepare;
    the propagation path is resolved here, once. On a mesh (`on_mesh`) "auto" is the
    reference "bcoo": SciPy's host product sees one device."""
    method = mesh_method(cfg.propagation) if on_mesh else resolve_method(cfg.propagation)
    graph, aug_data = empty_graph(), {}  # an empty graph keeps one TrainData type
    backbone = cfg.backbone_spec
    if backbone.prepare_graph is not None:
        host_graph = normalized_graph(data.train, data.n_items)
        graph = backbone.prepare_graph(cfg, host_graph, data.n_users, method)
        augment = cfg.augment_spec
        if augment is not None and augment.prepare:
            aug_data = augment.prepare(host_graph, data.n_users)
    backbone_data = backbone.prepare(cfg, data) if backbone.prepare else {}
    spec = cfg.loss_spec
    loss_data = spec.prepare(data) if spec.prepare else {}
    return TrainData(
        pairs=make_train_pairs(data.train),
        graph=Graph(*map(jnp.asarray, graph)),
        backbone_data={name: jnp.asarray(value) for name, value in backbone_data.items()},
        loss_data={name: jnp.asarray(value) for name, value in loss_data.items()},
        aug_data={name: jnp.asarray(value) for name, value in aug_data.items()},
        propagation=method,
    )


def mesh_method(propagation: str) -> str:
    """The propagation path of a run on a mesh: any device path; "auto" is "bcoo"."""
    if propagation == "host_csr":
        raise ConfigError(
            "--propagation=host_csr runs on the host and cannot train on a --mesh; use "
            "auto (bcoo), bcoo, segment_sum or csr"
        )
    return "bcoo" if propagation == "auto" else propagation
