"""What a backbone declares, so the trainer, the evaluator and the diagnostics need no
branch on its name.

A backbone module (``advjax/models/<name>.py``) holds the model's forward pass and, at
its end, one ``BACKBONE = Backbone(...)``; ``advjax/models/registry.py`` lists them and
``--backbone`` names one. From the spec the trainer learns:

  settings       its own flags (TrainConfig fields with help text and checks);
  check          what is wrong with a whole configuration of it (cross-setting rules);
  init_params    its parameters: at least the layer-0 tables {"user": [U, d],
                 "item": [I, d]} (the L2 penalty, the hardness models and the losses'
                 own groups read those rows), from the run's CF key;
  prepare_graph  the graph operand it reads, built once from the normalised training
                 graph; None for a backbone that reads no graph (MF);
  prepare        other arrays it reads, built once from the split (UltraGCN: each
                 item's nearest items in the co-occurrence graph and their weights);
                 they travel in TrainData.backbone_data, and `extra_loss` reads them;
                 None for a backbone that needs none (MF, LightGCN);
  represent      the final user and item representations of every node (evaluation,
                 adversarial passes, diagnostics, the trained model);
  rows           a training step's need: the batch's user rows and every item (a
                 backbone may compute fewer rows than `represent`; None: `represent`
                 and a gather);
  depth          its propagation layers, for the augmentations that act between them
                 (SGL, NCL, XSimGCL); None for a backbone without layers;
  extra_loss     a term it adds to each step's objective, whatever the loss (UltraGCN's
                 item-item constraint and norm penalty), reading the step's layer-0
                 parameters, batch and prepared arrays; or None;
  sample         what a training step reads in place of `rows`' representations: a
                 draw from them with the batch's key, and a term for the objective
                 (VGAE's reparameterised z and its KL term); None: the rows themselves.
                 Evaluation, the adversary's passes and the diagnostics read
                 `represent`; such a backbone takes no --augment;
  scoring        how a user scores an item: "cosine" (the unit-norm representations'
                 dot product: what the cosine losses train) or "dot" (raw products:
                 models trained on them, such as UltraGCN under its own loss); either
                 fixed, or a function of the configuration when the loss decides it;
  label, slug    its name in progress lines ("LightGCN-2") and in default workdirs
                 ("lightgcn2");
  claims_legacy  whether a configuration saved before --backbone existed (no
                 "backbone" key; its --n_layers alone chose the model) was this
                 backbone's; exactly one backbone claims each such configuration.

Everything a spec holds that the epochs call is pure: jitted code calls it while tracing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from advjax.settings import Setting, nothing_wrong

SCORINGS = ("cosine", "dot")


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A backbone as the trainer sees it (see the module docstring).

    Attributes:
      name: the --backbone value.
      init_params: (cfg, key, n_users, n_items) -> {"user", "item", ...} parameters.
      represent: (cfg, params, graph, method) -> (user [U, d], item [I, d]) final
        representations; `graph` is what prepare_graph built (an empty Graph without
        one), `method` the resolved propagation path (static).
      label: (cfg) -> its name in progress lines.
      slug: (cfg) -> its name in default workdirs.
      claims_legacy: (saved config dict) -> bool (see the module docstring); a
        backbone added after --backbone claims none.
      settings: its flags.
      check: (cfg) -> None when the configuration is valid, else a one-line problem.
      prepare_graph: (cfg, graph (NumPy, normalised), n_users, method) -> the graph
        operand as device arrays, or None (reads no graph).
      rows: (cfg, params, graph, users int [B], method) -> (user rows [B, d], item
        [I, d]), or None (represent, then the rows `users`).
      depth: (cfg) -> its number of propagation layers, or None (no layers).
      prepare: (cfg, SplitData) -> {name: NumPy array}, or None (reads none); the
        arrays reach `extra_loss` as device arrays (TrainData.backbone_data).
      extra_loss: (cfg, params, users [B], pos [B], negs [B, N], data) -> [] added to
        the objective, `data` being what `prepare` built ({} without it); or None.
      sample: (cfg, params, user rows [B, d], item [I, d], key) -> (user rows [B, d],
        item [I, d], [] added to the objective, {name: [] diagnostic}), or None.
      scoring: one of SCORINGS, or (cfg) -> one of them (`scoring_of` asks).
    """

    name: str
    init_params: Callable[[Any, jax.Array, int, int], dict]
    represent: Callable
    label: Callable[[Any], str]
    slug: Callable[[Any], str]
    claims_legacy: Callable[[dict], bool] = lambda saved: False
    settings: tuple[Setting, ...] = ()
    check: Callable[[Any], str | None] = nothing_wrong
    prepare_graph: Callable | None = None
    rows: Callable | None = None
    depth: Callable[[Any], int] | None = None
    prepare: Callable | None = None
    extra_loss: Callable | None = None
    sample: Callable | None = None
    scoring: str | Callable[[Any], str] = "cosine"

    def __post_init__(self):
        if not callable(self.scoring):
            self._checked_scoring(self.scoring)

    def _checked_scoring(self, scoring: str) -> str:
        if scoring not in SCORINGS:
            raise ValueError(
                f"backbone {self.name}: scoring must be one of {SCORINGS}, got {scoring!r}"
            )
        return scoring

    def scoring_of(self, cfg) -> str:
        """How this configuration's trained model scores: "cosine" or "dot"."""
        return self._checked_scoring(self.scoring(cfg) if callable(self.scoring) else self.scoring)

    def step_rows(self, cfg, params: dict, graph, users: jax.Array, method: str):
        """(user rows [B, d], item [I, d]) of a step's batch `users` (see `rows`)."""
        if self.rows is not None:
            return self.rows(cfg, params, graph, users, method)
        user_repr, item_repr = self.represent(cfg, params, graph, method)
        return user_repr[users], item_repr
