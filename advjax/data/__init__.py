"""Interaction data: split directories read into CSR arrays."""

from advjax.data.splits import (
    Interactions,
    SplitData,
    load_dataset,
    load_split_dir,
    print_warning,
)

__all__ = ["Interactions", "SplitData", "load_dataset", "load_split_dir", "print_warning"]
