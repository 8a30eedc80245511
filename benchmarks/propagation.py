"""LightGCN propagation, BCOO vs segment_sum, forward and forward+backward.

  python -m benchmarks.propagation [--data_dir=../shared/data/yahoo.new] [--n_layers=2]

Prints median milliseconds per path and the bytes/FLOPs floor of one propagation; the
faster path on each platform is recorded in advjax/models/propagation.py DEFAULT_METHOD.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from advjax.data import load_dataset
from advjax.models.propagation import METHODS, propagate
from advjax.train.steps import make_train_data

flags.DEFINE_string("data_dir", "../shared/data/yahoo.new", "Split directory.")
flags.DEFINE_integer("n_layers", 2, "Propagation layers.")
flags.DEFINE_integer("repeats", 20, "Timed calls per path.")
FLAGS = flags.FLAGS


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
    graph = make_train_data(data, FLAGS.n_layers).graph
    n_nodes, dim, n_edges = data.n_users + data.n_items, 64, graph.rows.shape[0]
    x = jax.random.normal(jax.random.key(0), (n_nodes, dim), jnp.float32)
    # Per layer: read an edge (2 int32 + 1 float32), gather a source row, add into a target.
    bytes_per_layer = n_edges * (12 + 2 * 4 * dim) + 2 * n_nodes * 4 * dim
    print(
        f"{data.name}: {n_nodes} nodes, {n_edges} edges, d={dim}, L={FLAGS.n_layers}; "
        f"platform {jax.default_backend()}; ~{FLAGS.n_layers * bytes_per_layer / 1e6:.0f} MB "
        "moved per forward"
    )
    reference = None
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
        print(
            f"{method:12s} forward {f_ms:8.2f} ms   forward+backward {g_ms:8.2f} ms   "
            f"max |diff| vs bcoo {diff:.1e}"
        )


if __name__ == "__main__":
    app.run(main)
