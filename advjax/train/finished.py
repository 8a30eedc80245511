"""A finished run read back from its workdir, for the analysis figures (SPEC §7).

`load_finished_run` restores what a run ended with: the newest state checkpoint (the
adversary as the run left it: frozen since its last adversarial pass, SPEC §3) with
the CF parameters of the best validation put in its place (the model the run reports).
The functions below read it on the run's fixed diagnostics sample
(advjax.diagnostics.Sample) and are pure NumPy apart from the model's forward pass.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from advjax.data import SplitData
from advjax.errors import ConfigError, WorkdirError
from advjax.scores import l2_normalize
from advjax.train import streams
from advjax.train.checkpoints import RunCheckpoints, load_run_config
from advjax.train.setup import RunSetup, setup_run
from advjax.train.state import TrainState
from advjax.train.step import Batch, loss_inputs
from advjax.train.streams import fold


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """A finished run as its checkpoints hold it.

    Attributes:
      workdir: the run's directory.
      run: its setup (configuration, split, train data, fixed diagnostics sample), as
        setup_run(config.json's configuration) gives it.
      state: the newest state checkpoint, its cf_params replaced by the best
        validation's (the final state's own where the run saved no best).
      best_epoch: the epoch of those CF parameters.
      last_epoch: the epoch of the newest state checkpoint.
    """

    workdir: str
    run: RunSetup
    state: TrainState
    best_epoch: int
    last_epoch: int


def load_finished_run(workdir: str, *, data: SplitData | None = None) -> FinishedRun:
    """Restores the finished run in `workdir` (see FinishedRun).

    Args:
      workdir: a run's directory, holding config.json, results.json and checkpoints.
      data: its split when already loaded (e.g. the other seeds' of one cell); None
        loads the one config.json names.

    The checkpoints are opened as training opens them (RunCheckpoints), which writes
    config.json back unchanged: the workdir must be writable.

    Raises:
      WorkdirError: one line naming the workdir when it holds no run, an unfinished
        one (no results.json), or no state checkpoint to restore.
    """
    cfg = load_run_config(workdir)
    if not os.path.exists(os.path.join(workdir, "results.json")):
        raise WorkdirError(f"{workdir}: no finished run here (no results.json)")
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise WorkdirError(f"{workdir}: the run kept no checkpoints to restore")
    run = setup_run(cfg, data)
    ckpt = RunCheckpoints(workdir, cfg, log=lambda line: None)
    try:
        restored = ckpt.restore_latest(run.state)
        if restored is None:
            raise WorkdirError(f"{workdir}: no readable state checkpoint to restore")
        state, stopping = restored
        best = ckpt.restore_best(jax.device_get(state.cf_params))
    finally:
        ckpt.close()
    last_epoch = int(state.epoch)
    if best is None:  # no validation split: the run reports its final model
        return FinishedRun(workdir, run, state, last_epoch, last_epoch)
    state = state.replace(cf_params=jax.tree_util.tree_map(jnp.asarray, best))
    return FinishedRun(workdir, run, state, int(stopping["best_epoch"]), last_epoch)


def sample_hardness_logits(finished: FinishedRun) -> np.ndarray:
    """float32 [S, N] hardness logits of the run's diagnostics sample (sample.negs).

    The hardness is the adversary's final one (frozen after its last adversarial
    pass) with the CF model at its best validation, computed as the run's diagnostics
    compute it (advjax/train/run_diagnostics.py); p(j | u, i) is their softmax over each row,
    delta = log(N p) (advjax.losses.hardness_delta).

    Raises:
      ConfigError: the run's loss weights no negatives (its spec has no `hardness`).
    """
    run, state = finished.run, finished.state
    spec = run.cfg.loss_spec
    if not spec.hardness:
        raise ConfigError(
            f"{finished.workdir}: the run's loss ({run.cfg.loss_label}) has no hardness"
        )
    sample = run.sample
    model = run.model(state.cf_params)
    user_hat, item_hat = l2_normalize(model.users), l2_normalize(model.items)
    key = fold(state.key, streams.DIAGNOSTICS, streams.DIAGNOSTICS_HARDNESS)
    batch = Batch(sample.users, sample.pos, sample.negs, key)
    inputs = loss_inputs(
        state, run.train_data, batch, user_hat[sample.users], item_hat, state.cf_params,
        state.adv_params,
    )  # fmt: skip
    return np.asarray(spec.hardness(run.cfg, inputs), np.float32)


def unit_embeddings(finished: FinishedRun) -> tuple[np.ndarray, np.ndarray]:
    """float64 (user_hat [U, d], item_hat [I, d]): the final embeddings at the best CF
    parameters, scaled to unit norm (the scores the evaluation ranks by are their
    inner products)."""
    model = jax.device_get(finished.run.model(finished.state.cf_params))
    user_emb, item_emb = np.asarray(model.users, np.float64), np.asarray(model.items, np.float64)
    return (
        user_emb / np.maximum(np.linalg.norm(user_emb, axis=1, keepdims=True), 1e-12),
        item_emb / np.maximum(np.linalg.norm(item_emb, axis=1, keepdims=True), 1e-12),
    )


def item_cosines(finished: FinishedRun, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """float64 [R, N] cosine similarity of each users[r] with each items[r, n].

    Args:
      finished: the run.
      users: int [R] user ids.
      items: int [R, N] item ids (e.g. the sample's negatives).
    """
    user_hat, item_hat = unit_embeddings(finished)
    users, items = np.asarray(users), np.asarray(items)
    return np.einsum("rd,rnd->rn", user_hat[users], item_hat[items])


def item_ranks(finished: FinishedRun, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """int64 [R, N] 1-based rank of items[r, n] in users[r]'s ranking of all items.

    Items are ranked by cosine similarity, highest first, ties by item id, with the
    user's training items left out (as the evaluation leaves them out); a training
    item asked for gets the rank it would have among the others.
    """
    user_hat, item_hat = unit_embeddings(finished)
    users, items = np.asarray(users), np.asarray(items)
    train = finished.run.data.train
    ranks = np.empty(items.shape, np.int64)
    ids = np.arange(item_hat.shape[0])
    for r, user in enumerate(users.tolist()):
        scores = item_hat @ user_hat[user]  # [I]
        candidate = np.ones(item_hat.shape[0], bool)
        candidate[train.items[train.indptr[user] : train.indptr[user + 1]]] = False
        own = scores[items[r]][:, None]  # [N, 1]
        above = (scores > own) | ((scores == own) & (ids < items[r][:, None]))  # [N, I]
        ranks[r] = 1 + np.sum(above & candidate, axis=1)
    return ranks
