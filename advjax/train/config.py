"""TrainConfig: every setting of a run, hashable so jitted steps can take it as static."""

from __future__ import annotations

import dataclasses

from advjax.errors import ConfigError
from advjax.models import propagation

LOSSES = ("bpr", "infonce", "adv_infonce", "ccl", "bc_loss", "adap_tau")
# How adv_infonce's hardness is set (Fig. 2b/4c): trained to maximise the loss, trained
# to minimise it, drawn at random per negative, or absent (delta = 0).
HARDNESS_STRATEGIES = ("adversarial", "reverse", "random", "none")


def _setting(default, help_text: str):
    """A config field with its flag help text."""
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and run settings. Defaults: MF + AdvInfoNCE on Coat (SPEC §3).

    Each field's help text sits in its metadata (``_setting``); experiments.run turns
    every field into a flag with that text, so ``--help`` is the field reference.
    A field added later must default to the behaviour from before it existed: saved
    configurations without it are read as having its default (``config_differences``).
    """

    dataset: str = _setting(
        "coat", "Embedded dataset, used when --data_dir is empty (only 'coat' ships)."
    )
    data_dir: str = _setting(
        "",
        "Split directory: train.txt, valid.txt, test_id.txt / test_ood.txt[.gz]; overrides "
        "dataset.",
    )
    n_users: int = _setting(
        0, "Declared number of users; a larger id is an error. 0: max id + 1 of the data."
    )
    n_items: int = _setting(
        0, "Declared number of items; a larger id is an error. 0: max id + 1 of the data."
    )
    n_layers: int = _setting(0, "LightGCN propagation layers; 0 = MF.")
    propagation: str = _setting(
        "auto",
        "LightGCN sparse product: auto (fastest measured on this platform), bcoo, "
        "segment_sum, host_csr (CPU), csr (cuSPARSE on CUDA).",
    )
    emb_dim: int = _setting(64, "Embedding size.")
    loss: str = _setting(
        "adv_infonce",
        "Training loss: bpr, infonce, adv_infonce, ccl, bc_loss or adap_tau (advjax.losses).",
    )
    hardness: str = _setting("embed", "Hardness model of adv_infonce: embed or mlp.")
    hardness_strategy: str = _setting(
        "adversarial",
        "How adv_infonce sets hardness: adversarial (the adversary maximises the loss), "
        "reverse (it minimises it: AdvInfoNCE-Reverse), random (logits drawn uniformly in "
        "[0, 1) per negative and step: InfoNCE-Rand), none (delta = 0).",
    )
    tau: float = _setting(
        0.75,
        "Temperature of the cosine logits (bpr, infonce, adv_infonce; tau1 of bc_loss; the "
        "warm-up temperature of adap_tau).",
    )
    ccl_margin: float = _setting(0.4, "CCL: margin m on the negatives' cosines.")
    ccl_neg_weight: float = _setting(1.0, "CCL: weight w of the mean negative term.")
    bc_tau_bias: float = _setting(0.1, "BC loss: temperature tau2 of the popularity branch.")
    bc_margin: str = _setting(
        "arccos",
        "BC loss margin: arccos (the paper: arccos of the branch's cosine) or sigmoid (the "
        "public code: 1 - sigmoid of the branch's raw inner product).",
    )
    bc_pop_epochs: int = _setting(
        5, "BC loss: first epochs train only the popularity branch, which then stays fixed."
    )
    adap_tau_warm_up: int = _setting(
        100, "Adap-tau: epochs with tau_0 = --tau before tau_0 follows the embeddings."
    )
    adap_tau_beta: float = _setting(
        1.0, "Adap-tau: scale beta of the per-user loss deviations (Lambert-W form)."
    )
    k_neg: float = _setting(64.0, "K, weight of the negative term of adv_infonce (paper: 64).")
    n_neg: int = _setting(64, "Sampled negatives per positive.")
    batch_size: int = _setting(1024, "Training batch size; the incomplete last batch is dropped.")
    lr: float = _setting(1e-3, "Adam learning rate of the CF model.")
    lr_adv: float = _setting(1e-2, "Adam learning rate of the hardness model.")
    l2_reg: float = _setting(1e-5, "L2 regulariser weight on layer-0 embeddings.")
    t_adv: int = _setting(
        15, "Adversarial period T_adv: candidate epochs e with (e + 3) % T_adv == 0."
    )
    e_adv: int = _setting(
        18, "E_adv: number of adversarial epochs in the whole run (the KL budget)."
    )
    warm_up_epochs: int = _setting(0, "No adversarial epoch at or before this epoch.")
    max_epochs: int = _setting(1000, "Epoch limit.")
    eval_every: int = _setting(5, "Validate every this many epochs.")
    patience: int = _setting(
        10, "Stop after this many validations without a better valid Recall@20."
    )
    ks: tuple[int, ...] = _setting(
        (20,), "Comma-separated cut-offs K of the reported metrics (must include 20)."
    )
    eval_batch_size: int = _setting(
        1024, "Users per evaluation batch (results do not depend on it)."
    )
    seed: int = _setting(2023, "PRNG seed.")

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.hardness_strategy not in HARDNESS_STRATEGIES:
            raise ConfigError(
                f"unknown hardness_strategy {self.hardness_strategy!r}; choose one of "
                f"{HARDNESS_STRATEGIES}"
            )
        if self.bc_margin not in ("arccos", "sigmoid"):
            raise ConfigError(f"unknown bc_margin {self.bc_margin!r}; choose arccos or sigmoid")
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
            "bc_pop_epochs",
            "adap_tau_warm_up",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("ccl_neg_weight", "bc_tau_bias", "adap_tau_beta"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not -1.0 <= self.ccl_margin <= 1.0:
            raise ConfigError(f"ccl_margin must be a cosine in [-1, 1], got {self.ccl_margin}")
        if self.tau <= 0 or self.k_neg <= 0:
            raise ConfigError(f"tau and k_neg must be > 0, got {self.tau} and {self.k_neg}")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"ks must be positive cut-offs, got {self.ks}")
        if 20 not in self.ks:
            raise ConfigError("ks must include 20: early stopping watches valid Recall@20")

    @property
    def uses_hardness(self) -> bool:
        """Whether the loss reads hardness logits (adv_infonce)."""
        return self.loss == "adv_infonce"

    @property
    def trains_adversary(self) -> bool:
        """Whether a hardness model exists and adversarial epochs run."""
        return self.uses_hardness and self.hardness_strategy in ("adversarial", "reverse")


def config_dict(cfg: TrainConfig) -> dict:
    """The configuration as saved in config.json and results.json (ks as a list)."""
    values = dataclasses.asdict(cfg)
    values["ks"] = list(values["ks"])
    return values


def config_differences(saved: dict, cfg: TrainConfig) -> dict[str, tuple]:
    """Fields where a saved configuration differs from cfg: name -> (saved, current).

    A field missing from `saved` was added to TrainConfig after it was written, and
    reads as its default (which keeps the earlier behaviour). A saved field that
    TrainConfig no longer has is a difference: what it did is gone.
    """
    defaults = config_dict(TrainConfig())
    current = config_dict(cfg)
    differences = {}
    for name in sorted(set(saved) | set(current)):
        was = saved.get(name, defaults.get(name))
        if was != current.get(name):
            differences[name] = (was, current.get(name))
    return differences


def format_differences(differences: dict[str, tuple]) -> str:
    """config_differences as "tau: 0.75 -> 0.5, lr: ..." for error messages."""
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(differences.items()))
