"""One run over several processes (hosts): joining them with jax.distributed, and which
process writes the run's files.

Every process runs the same program on the same data: it builds the same state from
the same seed, and the mesh (advjax/sharding.py) spans every process's devices, so each
one computes the batch rows and table rows its own devices hold. Validation,
diagnostics and early stopping run on every process from the same replicated values,
so they agree without talking. Files are the exception: Orbax's checkpoint managers
coordinate their writes across processes themselves; the workdir's own files
(config.json, metrics.jsonl, TensorBoard events, results.json) are written by
process 0 alone.
"""

from __future__ import annotations

import jax
from jax.experimental import multihost_utils

from advjax.errors import ConfigError


def initialize(coordinator_address: str, num_processes: int, process_id: int) -> bool:
    """Joins this process to the others of a run (jax.distributed.initialize) before
    anything touches a device; returns whether it did (False: a single process).

    Args:
      coordinator_address: "host:port" of process 0's coordinator; "" for one process.
      num_processes: processes in the run.
      process_id: this process's index, 0 .. num_processes - 1.
    """
    if not coordinator_address:
        if num_processes != 1 or process_id != 0:
            raise ConfigError("--num_processes and --process_id need --coordinator_address")
        return False
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ConfigError(
            f"--process_id={process_id} must lie in 0..{num_processes - 1} "
            f"(--num_processes={num_processes})"
        )
    # CPU processes exchange collectives over TCP through Gloo (XLA's CPU default has
    # none across processes); GPUs use NCCL whatever this says.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    except (RuntimeError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError(
            f"--coordinator_address={coordinator_address}: process {process_id} of "
            f"{num_processes} could not join ({reason})"
        ) from None
    return True


def is_primary() -> bool:
    """Whether this process writes the run's own files (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier `name` (no-op for one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
