"""When adversarial epochs run (SPEC §3, Alg. 1 as the public code runs it)."""


def is_adversarial_epoch(
    epoch: int, adv_epochs_done: int, *, t_adv: int, e_adv: int, warm_up_epochs: int
) -> bool:
    """Whether a hardness-model pass runs before the CF pass of `epoch` (0-based).

    Every t_adv epochs (offset so that epoch t_adv - 3 is the first candidate), after
    the warm-up, until e_adv adversarial epochs have run; then the hardness model stays
    fixed. e_adv bounds how far the hardness distribution moves (the KL ball, Eq. 9).
    """
    return (epoch + 3) % t_adv == 0 and adv_epochs_done < e_adv and epoch > warm_up_epochs


def runs_adversarial_pass(cfg, epoch: int, adv_epochs_done: int) -> bool:
    """The one decision whether an adversarial pass precedes CF epoch `epoch`: the loss
    has an adversary (its spec) and the schedule picks this epoch."""
    return cfg.trains_adversary and is_adversarial_epoch(
        epoch,
        adv_epochs_done,
        t_adv=cfg.t_adv,
        e_adv=cfg.e_adv,
        warm_up_epochs=cfg.warm_up_epochs,
    )
