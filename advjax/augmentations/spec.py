"""What an augmentation declares, so the training step needs no branch on its name.

A module ``advjax/augmentations/<name>.py`` holds the method's math and one
``AUGMENTATION = Augmentation(...)``; ``registry.py`` lists them. From the spec the
trainer learns its flags, its per-run state (re-drawn or re-fitted when a CF epoch
starts: SGL's dropped graphs, NCL's clusters) and `forward`, which replaces the
LightGCN rows a step reads and returns the contrastive term it adds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from advjax.settings import Setting


class AugmentInputs(NamedTuple):
    """What `forward` reads for one batch.

    Attributes:
      cf_params: layer-0 tables {"user": [U, d], "item": [I, d], ...}.
      graph: the normalised training graph (advjax.data.graph.Graph).
      method: the propagation path (static).
      depth: L, the backbone's propagation layers (static).
      users: int [B] the batch's users; pos: int [B] their positives.
      key: the batch's PRNG key (the augmentation's own stream of it).
      state: the augmentation's per-run state.
      epoch: int32 [], CF epochs finished before this batch's epoch.
      data: the arrays its `prepare` returned.
    """

    cf_params: dict
    graph: Any
    method: str
    depth: int
    users: jax.Array
    pos: jax.Array
    key: jax.Array
    state: dict
    epoch: jax.Array
    data: dict


class AugmentOutput(NamedTuple):
    """A step's embeddings and contrastive term.

    Attributes:
      user_rows: [B, d] the final embeddings of the batch's users the recommendation
        loss reads (before normalisation).
      item_emb: [I, d] every item's.
      loss: [] the weighted contrastive term added to the objective.
      diagnostics: name -> [] values logged as epoch means ("cl_loss").
    """

    user_rows: jax.Array
    item_emb: jax.Array
    loss: jax.Array
    diagnostics: dict


class EpochInputs(NamedTuple):
    """What `epoch_start` reads when a CF epoch starts.

    Attributes:
      cf_params: layer-0 tables (gradient stopped).
      graph, method, depth: as in AugmentInputs.
      key: the epoch's PRNG key for the augmentation.
      epoch: int32 [], CF epochs finished.
      data: the arrays its `prepare` returned.
    """

    cf_params: dict
    graph: Any
    method: str
    depth: int
    key: jax.Array
    epoch: jax.Array
    data: dict


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """An augmentation as the trainer sees it (see the module docstring).

    Attributes:
      name: the --augment value.
      forward: (cfg, AugmentInputs) -> AugmentOutput.
      settings: its flags.
      prepare: (graph (NumPy), n_users) -> {name: array} computed once on the host
        (TrainData.aug_data), or None.
      init_state: (cfg, n_users, n_items, n_edges) -> {name: array}, or None.
      epoch_start: (cfg, state, EpochInputs) -> state, or None.
      check: (cfg, depth) -> None when it can augment a backbone of `depth` propagation
        layers under cfg, else a one-line problem.
    """

    name: str
    forward: Callable[[Any, AugmentInputs], AugmentOutput]
    settings: tuple[Setting, ...] = ()
    prepare: Callable | None = None
    init_state: Callable | None = None
    epoch_start: Callable | None = None
    check: Callable[[Any, int], str | None] = lambda cfg, depth: None
