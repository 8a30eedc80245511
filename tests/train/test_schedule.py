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
