"""When adversarial epochs run (SPEC §3, Alg. 1 as the public code runs it)."""

from __future__ import annotations

from collections.abc import Callable


def is_adversarial_epoch(
    epoch: int, adv_epochs_done: int, *, t_adv: int, e_adv: int, warm_up_epochs: int
) -> bool:
    """Whether a hardness-model pass runs before the CF pass of `epoch` (0-based).

    Every t_adv epochs (offset so that epoch t_adv - 3 is the first candidate), after
    the warm-up, until e_adv adversarial epochs have run; then the hardness model stays
    fixed. e_adv bounds how far the hardness distribution moves (the KL ball, Eq. 9).
    """
    return (epoch + 3) % t_adv == 0 and adv_epochs_done < e_adv and epoch > warm_up_epochs


def runs_adversarial_pass(
    cfg,
    epoch: int,
    adv_epochs_done: int,
    *,
    divergence: Callable[[], float] | None = None,
    stopped: bool = False,
) -> bool:
    """The one decision whether an adversarial pass precedes CF epoch `epoch` (0-based).

    The loss has an adversary (its spec), adversarial training has not been stopped
    (`stopped`: --adv_stop=valid after a validation that did not improve), the
    schedule picks this epoch, and, with --kl_radius, the current divergence
    (`divergence()`, only called then) is below the radius.
    """
    if not cfg.trains_adversary or stopped:
        return False
    scheduled = is_adversarial_epoch(
        epoch,
        adv_epochs_done,
        t_adv=cfg.t_adv,
        e_adv=cfg.e_adv,
        warm_up_epochs=cfg.warm_up_epochs,
    )
    if scheduled and cfg.kl_radius > 0:
        if divergence is None:
            raise ValueError("--kl_radius needs the current divergence")
        return divergence() < cfg.kl_radius
    return scheduled
