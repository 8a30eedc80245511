"""One persistent XLA compilation cache for the whole test session.

Many tests compile the same epoch functions for the same shapes; the cache turns every
compile after the first into a load. Subprocess tests get the same directory through
JAX_COMPILATION_CACHE_DIR.
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
