"""Where a number came from: the code's commit and the numeric packages' versions.

Run records (results.json), tables and benchmark records all call these, so they
describe the same things in the same format.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess

import jax

# The packages whose arithmetic a run's numbers depend on: two runs of one
# configuration can differ in the last bits when these do.
NUMERIC_PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "optax", "flax")

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def package_versions() -> dict[str, str]:
    """{"python": "3.11.9", "jax": "0.10.2", ...}: python and NUMERIC_PACKAGES."""
    versions = {"python": platform.python_version()}
    for name in NUMERIC_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(short: bool = False) -> str:
    """The checkout's HEAD commit (40 hex digits, or 7+ with `short`), else "unknown"
    (no git, not a checkout, an installed copy)."""
    command = ["git", "rev-parse", *(["--short"] if short else []), "HEAD"]
    try:
        out = subprocess.run(command, cwd=_REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def machine_info() -> dict:
    """{"cpu": model name, "cores", "platform": JAX's backend, "devices",
    "load_avg_1m_start"}: the machine a timing ran on (benchmark records, the cost
    figure)."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "load_avg_1m_start": os.getloadavg()[0],
    }
