"""advjax: AdvInfoNCE and contrastive collaborative filtering in JAX."""

__version__ = "0.1.0"
