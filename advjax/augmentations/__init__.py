"""Graph augmentations with a contrastive term beside the recommendation loss (--augment).

SGL, NCL and XSimGCL (the augmentation-based rivals of the paper's Table 1): each
changes how a training step embeds its batch and adds its own contrastive loss to the
recommendation loss (--loss), which it composes with. Evaluation and adversarial
passes read the clean LightGCN embeddings. The paper (and each method's own paper) runs
them with InfoNCE as the recommendation loss; with AdvInfoNCE or another loss they are
an extension no paper reports.
"""
