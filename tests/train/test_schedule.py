import pytest

from advjax.train import is_adversarial_epoch


def _adversarial_epochs(n_epochs, **kw):
    done, picked = 0, []
    for epoch in range(n_epochs):
        if is_adversarial_epoch(epoch, done, **kw):
            picked.append(epoch)
            done += 1
    return picked


def test_coat_mf_schedule():
    # Coat MF: T_adv 15, E_adv 18: first candidate epoch 12, then every 15, 18 in all.
    picked = _adversarial_epochs(400, t_adv=15, e_adv=18, warm_up_epochs=0)
    assert picked == [12 + 15 * k for k in range(18)]


def test_yahoo_schedule_and_warm_up():
    assert _adversarial_epochs(60, t_adv=5, e_adv=3, warm_up_epochs=0) == [2, 7, 12]
    # Epoch e runs only when e > warm_up_epochs.
    assert _adversarial_epochs(60, t_adv=5, e_adv=3, warm_up_epochs=7) == [12, 17, 22]


def test_no_adversarial_epochs_when_budget_is_zero():
    assert _adversarial_epochs(100, t_adv=5, e_adv=0, warm_up_epochs=0) == []


def test_a_kl_radius_asks_the_divergence_only_on_scheduled_epochs():
    from advjax.train import TrainConfig
    from advjax.train.schedule import runs_adversarial_pass

    cfg = TrainConfig(t_adv=5, e_adv=3, kl_radius=0.01)
    asked = []

    def divergence(value):
        return lambda: asked.append(value) or value

    assert not runs_adversarial_pass(cfg, 0, 0, divergence=divergence(0.0))  # not scheduled
    assert asked == []
    assert runs_adversarial_pass(cfg, 2, 0, divergence=divergence(0.005))  # inside the radius
    assert not runs_adversarial_pass(cfg, 7, 1, divergence=divergence(0.01))  # on it: stop
    assert not runs_adversarial_pass(cfg, 12, 3, divergence=divergence(0.0))  # e_adv caps
    assert asked == [0.005, 0.01]
    with pytest.raises(ValueError, match="kl_radius"):
        runs_adversarial_pass(cfg, 2, 0)


def test_stopped_or_absent_adversaries_never_run():
    from advjax.train import TrainConfig
    from advjax.train.schedule import runs_adversarial_pass

    assert runs_adversarial_pass(TrainConfig(t_adv=5), 2, 0)
    assert not runs_adversarial_pass(TrainConfig(t_adv=5), 2, 0, stopped=True)
    assert not runs_adversarial_pass(TrainConfig(t_adv=5, loss="infonce"), 2, 0)
    assert not runs_adversarial_pass(TrainConfig(t_adv=5, hardness_strategy="random"), 2, 0)
