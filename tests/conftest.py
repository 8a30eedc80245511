"""One persistent XLA compilation cache for the whole test session, and the numerics the
tests assume on every platform.

Many tests compile the same epoch functions for the same shapes; the cache turns every
compile after the first into a load. Subprocess tests get the same directory through
JAX_COMPILATION_CACHE_DIR.

The tests compare float32 results with float64 references, and paths with each other,
at tolerances of 1e-7 to 1e-5, and a resumed run bit for bit with an uninterrupted one.
On recent NVIDIA GPUs JAX's default float32 product is TF32 (about 1e-3 relative) and
scatter-adds are non-deterministic, so the suite asks for full float32 products and
deterministic GPU ops (nothing changes on CPU); subprocess tests inherit both. README
(GPU) tells users the same settings. The suite runs in several pytest-xdist workers, each
its own process with its own cache; on a GPU they share the card, so none preallocates
most of its memory.
"""

import atexit
import os
import shutil
import tempfile

import jax

_CACHE = tempfile.mkdtemp(prefix="advjax-test-xla-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"
jax.config.update("jax_default_matmul_precision", "highest")
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_gpu_deterministic_ops=true"]
).strip()
