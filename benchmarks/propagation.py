"""LightGCN propagation paths timed against each other, forward and forward+backward.

  python -m benchmarks.propagation [--data_dir=../shared/data/yahoo.new] [--n_layers=2]

Prints median milliseconds per path, each one's largest difference from BCOO, the bytes
moved by one propagation, and the path it would pick (`pick_path`). The pick on each
platform is recorded in advjax/models/propagation.py DEFAULT_METHOD; --pick_to writes it
to a file, from which tools/device_session.sh sets ADVJAX_PROPAGATION for its later
commands (the variable overrides the table; advjax.models.propagation).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from advjax.data import load_dataset
from advjax.data.graph import normalized_graph
from advjax.files import write_atomically
from advjax.models.propagation import METHODS, prepare_graph, propagate, resolve_method

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the CLI flags when run as a program, so that importing `pick_path` (the
    tests do) never collides with experiments.run's --data_dir."""
    flags.DEFINE_string("data_dir", "../shared/data/yahoo.new", "Split directory.")
    flags.DEFINE_integer("n_layers", 2, "Propagation layers.")
    flags.DEFINE_integer("repeats", 20, "Timed calls per path.")
    flags.DEFINE_string("pick_to", "", "Also write the picked path's name to this file.")


# host_csr computes on the host through a callback: on an accelerator it is not a
# candidate for the device's default.
HOST_PATHS = ("host_csr",)


def pick_path(
    timings: dict[str, tuple[float, float]],
    platform: str,
    margin: float = 0.8,
    tolerance: float = 1e-3,
) -> str:
    """The path to make the platform's default: the fastest forward+backward among those
    that agree with bcoo to `tolerance`, if it takes at most `margin` of bcoo's time;
    else bcoo (a change of default must pay for itself clearly).

    Args:
      timings: {path: (forward+backward ms, max |diff| vs bcoo)}; must hold "bcoo".
      platform: jax.default_backend(); host paths compete only on "cpu".
    """
    base = timings["bcoo"][0]
    candidates = [
        (ms, path)
        for path, (ms, diff) in timings.items()
        if diff <= tolerance and (platform == "cpu" or path not in HOST_PATHS)
    ]
    ms, path = min(candidates)
    return path if ms <= margin * base else "bcoo"


def _median_ms(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm-up
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - tick)
    return 1e3 * float(np.median(times))


def main(argv):
    del argv
    data = load_dataset(data_dir=FLAGS.data_dir)
    # Full propagation reads no item Gram, so every path gets the same plain operand.
    graph = prepare_graph(
        normalized_graph(data.train, data.n_items), data.n_users, FLAGS.n_layers, "bcoo"
    )
    n_nodes, dim, n_edges = data.n_users + data.n_items, 64, graph.rows.shape[0]
    x = jax.random.normal(jax.random.key(0), (n_nodes, dim), jnp.float32)
    # Per layer: read an edge (2 int32 + 1 float32), gather a source row, add into a target.
    bytes_per_layer = n_edges * (12 + 2 * 4 * dim) + 2 * n_nodes * 4 * dim
    print(
        f"{data.name}: {n_nodes} nodes, {n_edges} edges, d={dim}, L={FLAGS.n_layers}; "
        f"platform {jax.default_backend()}; ~{FLAGS.n_layers * bytes_per_layer / 1e6:.0f} MB "
        "moved per forward"
    )
    reference, timings = None, {}
    for method in METHODS:
        fwd = jax.jit(lambda x, g, m=method: propagate(x, g, FLAGS.n_layers, m))
        grad = jax.jit(
            jax.grad(lambda x, g, m=method: jnp.sum(propagate(x, g, FLAGS.n_layers, m) ** 2))
        )
        f_ms = _median_ms(fwd, x, graph, repeats=FLAGS.repeats)
        g_ms = _median_ms(grad, x, graph, repeats=FLAGS.repeats)
        # The tests check the paths equal on CPU; this checks them here, on this platform.
        outputs = [np.asarray(fwd(x, graph)), np.asarray(grad(x, graph))]
        if reference is None:  # METHODS[0], bcoo
            reference = outputs
        diff = max(float(np.max(np.abs(o - r))) for o, r in zip(outputs, reference, strict=True))
        timings[method] = (g_ms, diff)
        print(
            f"{method:12s} forward {f_ms:8.2f} ms   forward+backward {g_ms:8.2f} ms   "
            f"max |diff| vs bcoo {diff:.1e}"
        )
    pick = pick_path(timings, jax.default_backend())
    print(f"pick for {jax.default_backend()}: {pick} (auto resolves to {resolve_method('auto')})")
    if FLAGS.pick_to:
        write_atomically(FLAGS.pick_to, pick + "\n")


if __name__ == "__main__":
    define_flags()
    app.run(main)
