"""Checkpoints of a run's workdir with Orbax: resume exactly, keep the best, refuse strangers.

Layout of a workdir:
  config.json            the TrainConfig that wrote the checkpoints (compared on resume)
  checkpoints/<epoch>/   the whole TrainState + early-stopping state, at every validation;
                         the newest `max_to_keep` are kept
  best/<epoch>/          CF parameters of the best validation so far (one kept)
  checkpoints_unreadable/<epoch>/  checkpoints that failed to restore, moved aside
  results.json           the final report

A resumed run replays the uninterrupted one bit for bit: every random draw is a
function of the root key and the counters saved in the state (see WORKSPACE.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from advjax import distributed
from advjax.errors import ConfigError, WorkdirError
from advjax.files import read_json_object, write_atomically
from advjax.train.config import (
    TrainConfig,
    config_dict,
    config_differences,
    format_differences,
)
from advjax.train.state import TrainState

# Settings that change nothing a checkpoint holds: a run may resume with other values.
_RESUMABLE_CHANGES = ("max_epochs", "eval_batch_size", "log_test")


class _QuietWriters:
    """Holds back what Orbax's and TensorStore's worker threads print when a save fails.

    A failed write (disk full) surfaces as multi-line tracebacks from several threads,
    through logging, the thread and unraisable-exception hooks and sys.excepthook; the
    one-line error raised instead says the same. After a failure the run is over, so
    the hooks stay quiet (`keep`); after a success the previous ones come back.
    """

    _LOGGERS = ("absl", "asyncio")

    def __enter__(self):
        self._levels = [logging.getLogger(n).level for n in self._LOGGERS]
        self._hooks = (threading.excepthook, sys.unraisablehook, sys.excepthook)
        for name in self._LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        threading.excepthook = lambda hook_args: None
        sys.unraisablehook = lambda unraisable: None
        sys.excepthook = lambda *exc_info: None
        self.keep = False
        return self

    def __exit__(self, *exc):
        if not self.keep:
            for name, level in zip(self._LOGGERS, self._levels, strict=True):
                logging.getLogger(name).setLevel(level)
            threading.excepthook, sys.unraisablehook, sys.excepthook = self._hooks
        return False


def load_run_config(workdir: str) -> TrainConfig:
    """The TrainConfig saved in a run's workdir (its config.json)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise WorkdirError(f"{workdir}: no run here (no config.json)")
    values, problem = read_json_object(path)
    if problem:
        raise WorkdirError(f"{path}: {problem}")
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise WorkdirError(f"{path}: settings this version no longer has: {', '.join(unknown)}")
    if "ks" in values:
        values["ks"] = tuple(values["ks"])
    return TrainConfig(**values)


def _host_tree(state: TrainState):
    """State as NumPy arrays with the typed PRNG key as raw data (Orbax stores arrays)."""
    return jax.device_get(state.replace(key=jax.random.key_data(state.key)))


def _stored_tree(state: TrainState):
    """What a checkpoint stores: the host tree, except for a state laid out on a mesh
    (advjax/sharding.py), whose arrays Orbax writes shard by shard from the processes
    that hold them, padded as they are (restore_latest cuts or pads them to the mesh it
    restores on)."""
    tree = state.replace(key=jax.random.key_data(state.key))
    on_mesh = any(
        isinstance(x, jax.Array) and len(x.sharding.device_set) > 1
        for x in jax.tree_util.tree_leaves(tree)
    )
    return tree if on_mesh else jax.device_get(tree)


def _cut_to(tree, abstract):
    """Each array of `tree` cut to its `abstract` rows (a mesh's zero padding dropped)."""
    return jax.tree_util.tree_map(
        lambda x, a: x[: a.shape[0]] if np.shape(x) != a.shape else x, tree, abstract
    )


class RunCheckpoints:
    """The checkpoints of one workdir.

    Args:
      workdir: the run's directory (created if missing).
      cfg: the run's configuration.
      max_to_keep: newest state checkpoints kept.
      restart: discard checkpoints of another configuration instead of refusing them.
      log: receives one line per notable event (resume, fallback, restart).
    """

    def __init__(
        self,
        workdir: str,
        cfg: TrainConfig,
        *,
        max_to_keep: int = 3,
        restart: bool = False,
        log: Callable[[str], None] = print,
    ):
        self.workdir = os.path.abspath(workdir)
        self.log = log
        try:
            os.makedirs(self.workdir, exist_ok=True)
            probe = os.path.join(self.workdir, f".write_test.{jax.process_index()}")
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
        except OSError as err:
            raise WorkdirError(f"{self.workdir}: workdir not writable ({err.strerror})") from None
        self._check_config(cfg, restart)
        distributed.barrier("advjax-workdir-config")  # process 0 wrote it (or discarded)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=False,
            create=True,
            cleanup_tmp_directories=True,  # half-written saves of a killed run
        )
        self._states = ocp.CheckpointManager(
            os.path.join(self.workdir, "checkpoints"), options=options
        )
        self._best = ocp.CheckpointManager(
            os.path.join(self.workdir, "best"),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1,
                enable_async_checkpointing=False,
                create=True,
                cleanup_tmp_directories=True,
            ),
        )

    def _check_config(self, cfg: TrainConfig, restart: bool) -> None:
        path = os.path.join(self.workdir, "config.json")
        current = config_dict(cfg)
        if os.path.exists(path):
            saved, problem = read_json_object(path)
            if problem:
                if not restart:
                    raise WorkdirError(f"{path}: {problem}; pass --restart to discard this run")
                discard = True
            else:
                changed = {
                    k: values
                    for k, values in config_differences(saved, cfg).items()
                    if k not in _RESUMABLE_CHANGES
                }
                if changed and not restart:
                    raise ConfigError(
                        f"{self.workdir} holds checkpoints of another configuration "
                        f"({format_differences(changed)}); "
                        "pass --restart to discard them, or choose another --workdir"
                    )
                discard = bool(changed)
            if discard:
                self.log(f"--restart: discarding the checkpoints in {self.workdir}")
                if distributed.is_primary():
                    for sub in ("checkpoints", "best"):
                        shutil.rmtree(os.path.join(self.workdir, sub), ignore_errors=True)
        if distributed.is_primary():
            write_atomically(path, json.dumps(current, indent=2))

    def save(self, state: TrainState, stopping: dict) -> None:
        """Saves the state reached after epoch `state.epoch` with the early-stopping
        record beside it (EarlyStopping.record)."""
        epoch = int(state.epoch)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_stored_tree(state)),
            loop=ocp.args.JsonSave(stopping),
        )
        self._guarded_save(self._states, epoch, args, "checkpoint")

    def save_best(self, epoch: int, cf_params) -> None:
        """Saves the CF parameters of a new best validation."""
        args = ocp.args.StandardSave(jax.device_get(cf_params))
        self._guarded_save(self._best, epoch, args, "best checkpoint")

    def _guarded_save(self, manager, epoch: int, args, what: str) -> None:
        with _QuietWriters() as quiet:
            try:
                manager.save(epoch, args=args)
                return
            except Exception as err:  # noqa: BLE001 - Orbax wraps I/O failures in many types
                quiet.keep = True
                failure = err
        text = str(failure)
        reason = "no space left on device" if "No space left" in text else text
        reason = (reason.splitlines() or [type(failure).__name__])[0][:200]
        raise WorkdirError(
            f"{self.workdir}: cannot save the {what} of epoch {epoch} ({reason}); "
            "the previous checkpoints are intact"
        )

    def restore_latest(self, template: TrainState, target=None) -> tuple[TrainState, dict] | None:
        """The newest readable checkpoint (state, early-stopping record), or None.

        A checkpoint that fails to restore is reported in one line and moved to
        checkpoints_unreadable/, and the next older one is tried.

        Args:
          template: a state of the run's shapes (its fresh state).
          target: for a run on a mesh, the abstract placed state
            (Placement.abstract_state): arrays are read straight into their shards,
            their rows cut or zero-padded to this mesh's padding. None: host arrays of
            the template's shapes (a mesh's padding cut off).
        """
        if target is None:
            # NumPy arrays as the target: Orbax reads them whole at their stored shapes
            # (a mesh's are padded and sharded; those are cut below).
            abstract = _host_tree(template)
            restore = ocp.args.StandardRestore(abstract)
        else:  # not strict: rows may be cut or zero-padded to this mesh's padding
            abstract = target
            restore = ocp.args.StandardRestore(abstract, strict=False)
        for epoch in sorted(self._states.all_steps(), reverse=True):
            try:
                restored = self._states.restore(
                    epoch, args=ocp.args.Composite(state=restore, loop=ocp.args.JsonRestore())
                )
            except Exception as err:  # noqa: BLE001 - any failure means unreadable
                self._set_aside(epoch, err)
                continue
            tree = restored.state if target is not None else _cut_to(restored.state, abstract)
            state = tree.replace(key=jax.random.wrap_key_data(tree.key))
            stopping = dict(restored.loop)
            # A best checkpoint newer than this state belongs to epochs about to be replayed.
            for step in self._best.all_steps():
                if step > stopping["best_epoch"]:
                    self._best.delete(step)
            return state, stopping
        return None

    def restore_best(self, template_params):
        """CF parameters of the best validation, or None when none was saved.
        `template_params`: arrays of their shapes; None restores them as saved (a fitted
        model's, whose shapes only its solve gives)."""
        epoch = self.best_epoch()
        if epoch is None:
            return None
        if template_params is None:
            return self._best.restore(epoch, args=ocp.args.StandardRestore())
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template_params)
        return self._best.restore(epoch, args=ocp.args.StandardRestore(abstract))

    def best_epoch(self) -> int | None:
        """The epoch of the saved best parameters, or None."""
        return self._best.latest_step()

    def _set_aside(self, epoch: int, err: Exception) -> None:
        source = os.path.join(self.workdir, "checkpoints", str(epoch))
        target = os.path.join(self.workdir, "checkpoints_unreadable", str(epoch))
        first_line = (str(err).splitlines() or [""])[0][:200]
        self.log(
            f"checkpoint of epoch {epoch} is unreadable ({type(err).__name__}: {first_line}); "
            f"moved to {target}, trying the previous one"
        )
        if distributed.is_primary():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(source, target)
        distributed.barrier(f"advjax-set-aside-{epoch}")
        self._states.reload()

    def close(self) -> None:
        self._states.close()
        self._best.close()
