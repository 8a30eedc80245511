"""What a training loss declares, so the trainer needs no branch on its name.

A loss module (``advjax/losses/<name>.py``) holds the loss's pure per-example math
and, at its end, one ``LOSS = Loss(...)`` spec; ``advjax/losses/registry.py`` lists
the specs. From a spec the trainer learns:

  settings      the loss's own flags (TrainConfig fields with help text and checks);
  check         what is wrong with a whole configuration for it (the backbone it needs);
  value         its per-sample value on one batch (LossInputs -> LossValue);
  prepare       arrays it reads besides the batch, computed once from the split;
  init_params   extra CF parameter groups (added to the "user"/"item" tables);
  trains        which CF parameter groups train in a given epoch (default: all);
  init_state    per-run state carried across epochs (TrainState.loss_state);
  epoch_start   how that state changes when a CF epoch starts;
  accumulate    how a batch adds to that state;
  adversary     the model it trains in adversarial passes, and in which direction;
  hardness      the logits of its weights over a batch's negatives (diagnostics only);
  label         its name in progress lines and default workdirs.

Everything a spec holds is pure: jitted code calls it while tracing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from advjax.settings import Setting, nothing_wrong


class LossInputs(NamedTuple):
    """What a loss reads for one batch of B positives with N negatives each.

    Attributes:
      pos_cos: [B] cosine of each user with its positive item (final embeddings).
      neg_cos: [B, N] cosine of each user with its negatives.
      user_vecs: [B, d] unit-norm final embeddings of the batch's users.
      item_table: [I, d] unit-norm final item embeddings.
      users: int [B]; pos: int [B]; negs: int [B, N].
      cf_params: layer-0 CF tables {"user", "item", ...the loss's groups}.
      adv_params: the adversary's parameters ({} without one).
      loss_state: the loss's per-run state ({} without one).
      loss_data: the arrays its `prepare` returned ({} without one).
      epoch: int32 [], CF epochs finished before this batch's epoch.
      key: PRNG key of the batch, or None (adversarial passes draw nothing).
    """

    pos_cos: jax.Array
    neg_cos: jax.Array
    user_vecs: jax.Array
    item_table: jax.Array
    users: jax.Array
    pos: jax.Array
    negs: jax.Array
    cf_params: dict
    adv_params: dict
    loss_state: dict
    loss_data: dict
    epoch: jax.Array
    key: jax.Array | None


class LossValue(NamedTuple):
    """A loss on one batch.

    Attributes:
      per_sample: [B] the loss of each positive; the step minimises its mean.
      diagnostics: name -> [B] values whose epoch means are logged ("kl").
      batch_stats: name -> [B] values the loss's `accumulate` reads (no gradient).
    """

    per_sample: jax.Array
    diagnostics: dict = {}
    batch_stats: dict = {}


class EpochView(NamedTuple):
    """What `epoch_start` may read when a CF epoch starts.

    Attributes:
      epoch: int32 [], CF epochs finished.
      pairs: the training pairs (advjax.sampling.TrainPairs).
      final_embeddings: () -> (user_emb [U, d], item_emb [I, d]) of the current CF
        parameters, gradient stopped; computed only when called.
    """

    epoch: jax.Array
    pairs: Any
    final_embeddings: Callable[[], tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Adversary:
    """A model trained in adversarial passes against the CF model.

    Attributes:
      init: (key, n_users, n_items) -> its parameters.
      ascent: True to maximise the loss (the adversary), False to minimise it.
    """

    init: Callable[[jax.Array, int, int], dict]
    ascent: bool


def _no_adversary(cfg) -> Adversary | None:
    return None


@dataclasses.dataclass(frozen=True)
class Loss:
    """A training loss as the trainer sees it (see the module docstring).

    Attributes:
      name: the --loss value.
      value: (cfg, LossInputs) -> LossValue.
      settings: its flags.
      check: (cfg) -> None when the whole configuration suits it, else a one-line
        problem (TrainConfig raises it); default: every configuration suits it.
      prepare: (SplitData) -> {name: NumPy array}, or None.
      init_params: (cfg, key, loss_data) -> {group: table}, or None. The key is the
        loss's own stream, so the main tables stay those of the other losses.
      trains: (cfg, epoch int32 []) -> {group: bool []} naming which CF parameter
        groups train this epoch, or None (all of them, always). A group that rests
        gets neither gradients nor Adam updates (its momentum would move it on).
      init_state: (cfg, n_users, n_items) -> {name: array}, or None.
      epoch_start: (cfg, loss_state, EpochView) -> loss_state, or None.
      accumulate: (loss_state, users [B], batch_stats) -> loss_state, or None.
      adversary: (cfg) -> Adversary or None (no adversarial passes).
      hardness: (cfg, LossInputs) -> [B, N] logits whose softmax weights the negatives,
        or None (uniform weights); read by the diagnostics (advjax.diagnostics), never
        by training.
      label: (cfg) -> its name in progress lines and default workdirs, or None (name).
    """

    name: str
    value: Callable[[Any, LossInputs], LossValue]
    settings: tuple[Setting, ...] = ()
    check: Callable[[Any], str | None] = nothing_wrong
    prepare: Callable | None = None
    init_params: Callable | None = None
    trains: Callable | None = None
    init_state: Callable | None = None
    epoch_start: Callable | None = None
    accumulate: Callable | None = None
    adversary: Callable[[Any], Adversary | None] = _no_adversary
    hardness: Callable | None = None
    label: Callable[[Any], str] | None = None

    def label_of(self, cfg) -> str:
        """Its name in progress lines: "adv_infonce-mlp-reverse", "ccl"."""
        return self.label(cfg) if self.label else self.name
