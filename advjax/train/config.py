"""TrainConfig: every setting of a run, hashable so jitted steps can take it as static."""

from __future__ import annotations

import dataclasses

from advjax.errors import ConfigError
from advjax.models import propagation

LOSSES = ("infonce", "adv_infonce")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and run settings. Defaults: MF + AdvInfoNCE on Coat (SPEC §3).

    Attributes:
      dataset: embedded dataset name, used when data_dir is empty.
      data_dir: a split directory; overrides dataset.
      n_users, n_items: declared sizes; an id beyond them is an error. 0: from the data.
      n_layers: LightGCN layers; 0 = MF.
      propagation: "auto" (the platform's fastest) or one of models.propagation.METHODS.
      emb_dim: embedding size.
      loss: "infonce" or "adv_infonce".
      hardness: hardness model, "embed" or "mlp" (adv_infonce only).
      tau: temperature of the cosine logits.
      k_neg: K, the weight of the negative term in adv_infonce.
      n_neg: N, sampled negatives per positive.
      batch_size: training batch size (the incomplete last batch is dropped).
      lr, lr_adv: Adam learning rates of the CF model and of the hardness model.
      l2_reg: weight of the L2 regulariser on layer-0 embeddings.
      t_adv, e_adv, warm_up_epochs: adversarial schedule (SPEC §3).
      max_epochs: epoch limit.
      eval_every: validate every this many epochs.
      patience: stop after this many validations without a better valid Recall@20.
      ks: cut-offs K of the reported metrics.
      eval_batch_size: users per evaluation batch.
      seed: PRNG seed.
    """

    dataset: str = "coat"
    data_dir: str = ""
    n_users: int = 0
    n_items: int = 0
    n_layers: int = 0
    propagation: str = "auto"
    emb_dim: int = 64
    loss: str = "adv_infonce"
    hardness: str = "embed"
    tau: float = 0.75
    k_neg: float = 64.0
    n_neg: int = 64
    batch_size: int = 1024
    lr: float = 1e-3
    lr_adv: float = 1e-2
    l2_reg: float = 1e-5
    t_adv: int = 15
    e_adv: int = 18
    warm_up_epochs: int = 0
    max_epochs: int = 1000
    eval_every: int = 5
    patience: int = 10
    ks: tuple[int, ...] = (20,)
    eval_batch_size: int = 1024
    seed: int = 2023

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.hardness not in ("embed", "mlp"):
            raise ConfigError(f"unknown hardness model {self.hardness!r}; choose embed or mlp")
        if self.propagation not in ("auto", *propagation.METHODS):
            raise ConfigError(
                f"unknown propagation {self.propagation!r}; choose auto or one of "
                f"{propagation.METHODS}"
            )
        for name in ("n_neg", "batch_size", "emb_dim", "eval_every", "eval_batch_size", "t_adv"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "n_users",
            "n_items",
            "n_layers",
            "max_epochs",
            "e_adv",
            "patience",
            "warm_up_epochs",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.tau <= 0 or self.k_neg <= 0:
            raise ConfigError(f"tau and k_neg must be > 0, got {self.tau} and {self.k_neg}")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"ks must be positive cut-offs, got {self.ks}")
        if 20 not in self.ks:
            raise ConfigError("ks must include 20: early stopping watches valid Recall@20")

    @property
    def adversarial(self) -> bool:
        return self.loss == "adv_infonce"
