"""A trained model as everything after training sees it: the evaluator, the diagnostics
and (next) the public API and exports.

`TrainedModel` holds the final user and item representations a backbone's `represent`
gives at some parameters, and how the model scores a pair from them (its spec's
`scoring_of` the configuration). Whatever the backbone, the score of user u and item i
is the dot product of their score vectors (`score_vectors`: the representations
themselves, or unit-norm ones for "cosine"), so the evaluator ranks `scores` or the
score vectors' products and knows nothing of backbones. A model whose score is no such
product would add its own `score_vectors` here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advjax.scores import l2_normalize


class TrainedModel(struct.PyTreeNode):
    """Representations and how they score.

    Attributes:
      users: float [U, d] final user representations.
      items: float [I, d] final item representations.
      scoring: "cosine" (dot product of unit-norm representations) or "dot" (static).
    """

    users: jax.Array
    items: jax.Array
    scoring: str = struct.field(pytree_node=False, default="cosine")

    def score_vectors(self) -> tuple[jax.Array, jax.Array]:
        """(user [U, d], item [I, d]) vectors whose dot product is the score."""
        if self.scoring == "cosine":
            return l2_normalize(self.users), l2_normalize(self.items)
        return self.users, self.items

    def scores(self, users: jax.Array) -> jax.Array:
        """float [B, I]: the scores of users `users` (int [B]) against every item."""
        user_vecs, item_vecs = self.score_vectors()
        return jnp.matmul(user_vecs[users], item_vecs.T, precision=jax.lax.Precision.HIGHEST)


def trained_model(backbone, cfg, params: dict, graph, method: str) -> TrainedModel:
    """The TrainedModel of a backbone (advjax.models.backbone.Backbone) at `params`:
    its `represent` (graph and method as for it) and its scoring under cfg."""
    users, items = backbone.represent(cfg, params, graph, method)
    return TrainedModel(users, items, backbone.scoring_of(cfg))
