"""Float64 NumPy references the tests hold the float32 JAX code against."""

import numpy as np


def dense_adjacency(graph) -> np.ndarray:
    """The graph's weighted adjacency as a dense float64 [N, N] (entries are unique)."""
    n = graph.indptr.shape[0] - 1
    out = np.zeros((n, n))
    out[np.asarray(graph.rows), np.asarray(graph.cols)] = np.asarray(graph.weights)
    return out


def layer_mean(adj: np.ndarray, x: np.ndarray, n_layers: int) -> np.ndarray:
    """LightGCN's (1 / (L + 1)) sum_{l=0..L} adj^l x."""
    total, layer = x.copy(), x.copy()
    for _ in range(n_layers):
        layer = adj @ layer
        total += layer
    return total / (n_layers + 1)


def view_infonce(a, b, mask, tau) -> float:
    """InfoNCE between the real rows (`mask`) of two views [M, d], cosines: the mean over
    rows i of -log softmax_j(<a_i, b_j> / tau)[i]."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    a, b = a[mask], b[mask]
    logits = a @ b.T / tau
    top = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(lse - np.diag(logits)))
