"""Full-ranking evaluation of a split (SPEC §4), in padded, jitted user batches.

Modules, lower first (none imports a higher one):
  packing: the evaluated users in fixed-size batches and the padded (row, item) pairs of
    their targets and exclusions, built once in NumPy; their masks on device.
  ranking: the one-device metric paths "rank", "top_k" and "chunked" (tested equal)
    and the choice "auto" makes between them.
  mesh: the path on a (data, model) mesh, a shard_map whose merged top K is exact.
  evaluator: :class:`Evaluator`, :func:`make_evaluator`, :func:`build_evaluators`.
"""

from advjax.evaluation.evaluator import Evaluator, build_evaluators, make_evaluator
from advjax.evaluation.ranking import (
    CHUNK,
    CHUNKED_MIN_ITEMS,
    METHODS,
    RANK_MAX_ELEMENTS,
    RANK_MAX_PAIRS_PER_ROW,
)

__all__ = [
    "CHUNK",
    "CHUNKED_MIN_ITEMS",
    "METHODS",
    "RANK_MAX_ELEMENTS",
    "RANK_MAX_PAIRS_PER_ROW",
    "Evaluator",
    "build_evaluators",
    "make_evaluator",
]
