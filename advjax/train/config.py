"""TrainConfig: every setting of a run, hashable so jitted steps can take it as static."""

from __future__ import annotations

import dataclasses

from advjax.augmentations.registry import AUGMENTATIONS, augmentation_settings
from advjax.augmentations.spec import Augmentation
from advjax.errors import ConfigError
from advjax.losses.registry import LOSSES, all_settings
from advjax.losses.spec import Loss
from advjax.models import propagation
from advjax.models.backbone import Backbone
from advjax.models.fitted import Fitted
from advjax.models.registry import BACKBONES, FITTED, backbone_settings, legacy_backbone

NEGATIVE_MODES = ("fresh", "frozen")
ADV_STOPS = ("budget", "valid")


# The flags the registered backbones, losses and augmentations declare (each its own).
_DECLARED_SETTINGS = (*backbone_settings(), *all_settings(), *augmentation_settings())

# What only SGD training reads (with every loss's and augmentation's own settings): a
# fitted model (--backbone=ease|ials, advjax/train/fit.py) refuses them off their defaults.
SGD_SETTINGS = (
    "propagation", "loss", "augment", "tau", "n_neg", "negatives", "batch_size", "lr",
    "lr_adv", "l2_reg", "t_adv", "e_adv", "warm_up_epochs", "kl_radius", "adv_stop",
)  # fmt: skip


def _setting(default, help_text: str):
    """A config field with its flag help text."""
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True, eq=False)
class _RunSettings:
    """The settings every run has; TrainConfig adds the registered losses' own.

    Each field's help text sits in its metadata (``_setting``); experiments.run turns
    every field into a flag with that text, so ``--help`` is the field reference.
    A field added later must default to the behaviour from before it existed: saved
    configurations without it are read as having its default (``config_differences``).
    """

    dataset: str = _setting(
        "coat",
        "Embedded dataset, used when --data_dir is empty: 'coat' (the paper's split) or "
        "'coat_rebuilt' (Coat without that split's 11 leaked test pairs).",
    )
    data_dir: str = _setting(
        "",
        "Split directory: train.txt, valid.txt, test_id.txt / test_ood.txt[.gz]; overrides "
        "dataset.",
    )
    train_file: str = _setting(
        "",
        "Stem of the training file in --data_dir when it is not 'train' (kuairec2 ships "
        "train_reconstructed); a split.json in the directory may name it instead.",
    )
    n_users: int = _setting(
        0, "Declared number of users; a larger id is an error. 0: max id + 1 of the data."
    )
    n_items: int = _setting(
        0, "Declared number of items; a larger id is an error. 0: max id + 1 of the data."
    )
    backbone: str = _setting(
        "",
        f"Model: {', '.join(BACKBONES)} (trained by SGD on --loss) or {', '.join(FITTED)} "
        "(fitted by their own solvers; advjax.models; each adds its own flags). Empty: "
        "chosen by --n_layers as before this flag (0: mf, >= 1: lightgcn).",
    )
    propagation: str = _setting(
        "auto",
        "LightGCN sparse product: auto (fastest measured on this platform, or "
        "$ADVJAX_PROPAGATION), bcoo, segment_sum, host_csr (CPU), csr (cuSPARSE on CUDA).",
    )
    emb_dim: int = _setting(64, "Embedding size.")
    loss: str = _setting(
        "adv_infonce",
        f"Training loss: {', '.join(LOSSES)} (advjax.losses; each adds its own flags).",
    )
    augment: str = _setting(
        "none",
        "Graph augmentation with a contrastive term beside --loss: none, "
        f"{', '.join(AUGMENTATIONS)} (advjax.augmentations; LightGCN only; each adds its "
        "own flags). The paper runs them with --loss=infonce; any other loss, "
        "adv_infonce included, is an extension it does not run.",
    )
    tau: float = _setting(
        0.75,
        "Temperature of the cosine logits (bpr, infonce, adv_infonce; tau1 of bc_loss; the "
        "warm-up temperature of adap_tau).",
    )
    n_neg: int = _setting(64, "Sampled negatives per positive.")
    negatives: str = _setting(
        "fresh",
        "Negative draws: fresh (new draws every epoch and adversarial pass) or frozen (one "
        "draw per batch position for the whole run, as the paper's public code samples).",
    )
    batch_size: int = _setting(1024, "Training batch size; the incomplete last batch is dropped.")
    lr: float = _setting(1e-3, "Adam learning rate of the CF model.")
    lr_adv: float = _setting(1e-2, "Adam learning rate of the adversary (hardness model).")
    l2_reg: float = _setting(1e-5, "L2 regulariser weight on layer-0 embeddings.")
    t_adv: int = _setting(
        15, "Adversarial period T_adv: candidate epochs e with (e + 3) % T_adv == 0."
    )
    e_adv: int = _setting(
        18, "E_adv: number of adversarial epochs in the whole run (the KL budget)."
    )
    warm_up_epochs: int = _setting(0, "No adversarial epoch at or before this epoch.")
    kl_radius: float = _setting(
        0.0,
        "Adversary budget as a KL radius eta (Eq. 9; beyond the paper): a scheduled "
        "adversarial pass runs only while the hardness divergence KL(U||P) on the "
        "diagnostics' fixed sample is below eta; --e_adv still caps the passes. 0: the "
        "paper's count-based budget alone.",
    )
    adv_stop: str = _setting(
        "budget",
        "When adversarial training ends: budget (after --e_adv passes, or at --kl_radius) "
        "or valid (also at the first validation that does not beat the best).",
    )
    max_epochs: int = _setting(1000, "Epoch limit.")
    eval_every: int = _setting(5, "Validate every this many epochs.")
    patience: int = _setting(
        10, "Stop after this many validations without a better valid Recall@20."
    )
    ks: tuple[int, ...] = _setting(
        (20,), "Comma-separated cut-offs K of the reported metrics (must include 20)."
    )
    log_test: bool = _setting(
        False,
        "Also evaluate every test split at each validation, into metrics.jsonl and "
        "TensorBoard (test_ood/recall@20, ...); selection and early stopping still read "
        "validation only.",
    )
    eval_batch_size: int = _setting(
        1024, "Users per evaluation batch (results do not depend on it)."
    )
    seed: int = _setting(2023, "PRNG seed.")

    def __post_init__(self):
        if self.backbone and self.backbone not in {**BACKBONES, **FITTED}:
            raise ConfigError(
                f"unknown backbone {self.backbone!r}; choose one of {(*BACKBONES, *FITTED)}"
            )
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; choose one of {tuple(LOSSES)}")
        self._check_backbone()
        problem = self.loss_spec.check(self)
        if problem:
            raise ConfigError(problem)
        if self.augment != "none":
            self._check_augment()
        if self.propagation not in ("auto", *propagation.METHODS):
            raise ConfigError(
                f"unknown propagation {self.propagation!r}; choose auto or one of "
                f"{propagation.METHODS}"
            )
        if self.adv_stop not in ADV_STOPS:
            raise ConfigError(f"unknown adv_stop {self.adv_stop!r}; choose one of {ADV_STOPS}")
        if self.kl_radius < 0:
            raise ConfigError(f"kl_radius must be >= 0, got {self.kl_radius}")
        if self.negatives not in NEGATIVE_MODES:
            raise ConfigError(
                f"unknown negatives {self.negatives!r}; choose one of {NEGATIVE_MODES}"
            )
        for name in ("n_neg", "batch_size", "emb_dim", "eval_every", "eval_batch_size", "t_adv"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "n_users",
            "n_items",
            "max_epochs",
            "e_adv",
            "patience",
            "warm_up_epochs",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.tau <= 0:
            raise ConfigError(f"tau must be > 0, got {self.tau}")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"ks must be positive cut-offs, got {self.ks}")
        if 20 not in self.ks:
            raise ConfigError("ks must include 20: early stopping watches valid Recall@20")
        for setting in _DECLARED_SETTINGS:
            problem = setting.check(getattr(self, setting.name))
            if problem:
                raise ConfigError(f"{setting.name} {problem}, got {getattr(self, setting.name)!r}")

    def _identity(self) -> tuple:
        """The values that make the configuration: every field, the backbone by name (an
        empty --backbone as the one --n_layers chooses), so equal runs compare equal."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["backbone"] = self.model_spec.name
        return tuple(values.items())

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _check_backbone(self):
        """The model's own rules, and no other model's setting off its default; a fitted
        model, no setting of SGD training off its default either."""
        spec = self.model_spec
        own = {setting.name for setting in spec.settings}
        if self.fitted_spec is not None:
            self._check_fitted()
        for name, other in {**BACKBONES, **FITTED}.items():
            for setting in other.settings:
                value = getattr(self, setting.name)
                if setting.name not in own and value != setting.default:
                    raise ConfigError(
                        f"--{setting.name}={value} is a setting of --backbone={name}; this "
                        f"run's backbone is {spec.name}"
                    )
        problem = spec.check(self)
        if problem:
            raise ConfigError(problem)

    def _check_fitted(self):
        """A fitted model reads no setting of SGD training: one off its default would be
        silently ignored, so it is refused."""
        defaults = _RunSettings.__dataclass_fields__
        sgd = {name: defaults[name].default for name in SGD_SETTINGS}
        sgd.update({s.name: s.default for s in (*all_settings(), *augmentation_settings())})
        changed = [name for name, default in sgd.items() if getattr(self, name) != default]
        if changed:
            raise ConfigError(
                f"--backbone={self.backbone} is fitted by its own solver, not trained on a "
                f"loss: {', '.join('--' + name for name in changed)} would not be read"
            )

    def _check_augment(self):
        """--augment needs a backbone with propagation layers, and its own rules."""
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(
                f"unknown augment {self.augment!r}; choose none or one of {tuple(AUGMENTATIONS)}"
            )
        depth = self.backbone_spec.depth
        if self.backbone_spec.sample is not None:
            raise ConfigError(
                f"--backbone={self.backbone_spec.name} samples its own training rows; "
                f"--augment={self.augment} builds others and cannot be combined with it"
            )
        if depth is None:
            # A backbone that samples its training rows (VGAE) takes no augmentation.
            layered = [
                name
                for name, spec in BACKBONES.items()
                if spec.depth is not None and spec.sample is None
            ]
            raise ConfigError(
                f"--augment={self.augment} acts on propagation layers: needs a backbone with "
                f"them ({', '.join(layered)}), not {self.backbone_spec.name}"
            )
        problem = self.augment_spec.check(self, depth(self))
        if problem:
            raise ConfigError(problem)

    @property
    def model_spec(self) -> Backbone | Fitted:
        """The spec of --backbone (advjax.models.registry): a backbone or a fitted model;
        without --backbone, the backbone --n_layers chooses (legacy_backbone), so
        `replace(cfg, n_layers=...)` of such a configuration may change its backbone, as
        the flag always did."""
        if self.backbone in FITTED:
            return FITTED[self.backbone]
        if self.backbone:
            return BACKBONES[self.backbone]
        return BACKBONES[legacy_backbone(dataclasses.asdict(self))]

    @property
    def backbone_spec(self) -> Backbone:
        """The spec of the backbone SGD trains (model_spec); a fitted model has none."""
        spec = self.model_spec
        if not isinstance(spec, Backbone):
            raise ConfigError(
                f"--backbone={spec.name} is fitted by its own solver "
                "(advjax/train/fit.py), not trained by SGD steps"
            )
        return spec

    @property
    def fitted_spec(self) -> Fitted | None:
        """The spec of a fitted --backbone (advjax.models.fitted), else None."""
        return FITTED.get(self.backbone)

    @property
    def slug(self) -> str:
        """The run as default workdirs name it: "lightgcn2-adv_infonce-embed", "ials"."""
        spec = self.model_spec
        if self.fitted_spec is not None:
            return spec.slug(self)
        return f"{spec.slug(self)}-{self.loss_label}"

    @property
    def loss_spec(self) -> Loss:
        """The spec of --loss (advjax.losses.registry)."""
        return LOSSES[self.loss]

    @property
    def augment_spec(self) -> Augmentation | None:
        """The spec of --augment (advjax.augmentations.registry); None for none."""
        return AUGMENTATIONS.get(self.augment)

    @property
    def loss_label(self) -> str:
        """The loss as progress lines and default workdirs name it: "adv_infonce-embed",
        "infonce+sgl" with an augmentation."""
        label = self.loss_spec.label_of(self)
        return label if self.augment == "none" else f"{label}+{self.augment}"

    @property
    def trains_adversary(self) -> bool:
        """Whether the loss has an adversary, so adversarial passes run."""
        return self.loss_spec.adversary(self) is not None


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [
        (s.name, type(s.default), dataclasses.field(default=s.default, metadata={"help": s.help}))
        for s in _DECLARED_SETTINGS
    ],
    bases=(_RunSettings,),
    frozen=True,
    eq=False,  # _RunSettings's equality: the backbone by name
)
TrainConfig.__module__ = __name__
TrainConfig.__doc__ = """Hyperparameters and run settings (default: MF + AdvInfoNCE on Coat).

The fields of _RunSettings, then each registered loss's settings
(advjax.losses.registry): adding a loss adds its flags here without editing this file.
"""


def config_dict(cfg: TrainConfig) -> dict:
    """The configuration as saved in config.json and results.json (ks as a list, the
    backbone by name: an empty --backbone as the one --n_layers chose)."""
    values = dataclasses.asdict(cfg)
    values["ks"] = list(values["ks"])
    values["backbone"] = cfg.model_spec.name
    return values


def config_differences(saved: dict, cfg: TrainConfig) -> dict[str, tuple]:
    """Fields where a saved configuration differs from cfg: name -> (saved, current).

    A field missing from `saved` was added to TrainConfig after it was written, and
    reads as its default (which keeps the earlier behaviour); a missing "backbone" is
    the one its --n_layers chose (advjax.models.registry.legacy_backbone). A saved field that
    TrainConfig no longer has is a difference: what it did is gone.
    """
    if not saved.get("backbone"):
        saved = {**saved, "backbone": legacy_backbone(saved)}
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


class TracedSettings:
    """A run's configuration as a traced epoch reads it: every setting is cfg's, except
    the numeric ones in `values`, an explicit pytree of arrays that the epoch takes as an
    argument where one program trains runs differing in them (advjax/train/multirun.py,
    TRACED_SETTINGS). Nothing is written into cfg: it stays a valid, hashable
    configuration. Losses, backbones and augmentations read it as they read cfg."""

    __slots__ = ("_cfg", "_values")

    def __init__(self, cfg: TrainConfig, values: dict):
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        return getattr(object.__getattribute__(self, "_cfg"), name)

    def __setattr__(self, name: str, value):
        raise AttributeError("TracedSettings is read-only")


def traced(cfg: TrainConfig, values: dict | None):
    """cfg as an epoch reads it with the traced `values` ({setting: array}); cfg itself
    when there are none (a run alone: its settings stay constants XLA may fold)."""
    return TracedSettings(cfg, values) if values else cfg
