"""The sealed threat model: the attacker's own model copy, its own randomness, and victims trained on other photos."""

import pytest
import torch

from dlg_core import run as run_module
from dlg_core.client import SharedUpdate
from dlg_core.config import DEFAULT, AttackConfig
from dlg_core.defences import apply_defences, client_update, parse_defences
from dlg_core.images import load_sample
from dlg_core.models import build_model
from dlg_core.run import TRAINED_ON_PHOTO, AttackRun, attacker_seed, prepare_victim, run_to_end
from dlg_core.training import bundled_photos, photos_in_training_set, train_victim, training_set

torch.set_num_threads(1)


def flat(update: SharedUpdate) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in update.gradients])


def test_the_attacker_casts_its_own_copy_and_the_shared_victim_stays_as_sent():
    image = load_sample("cat_chelsea", 16)
    config = DEFAULT.replace(size=16, steps=2)
    victim = prepare_victim(config, image, (0,))  # one victim for several attacks, as the Compare page does
    before = [p.detach().clone() for p in victim.model.parameters()]
    update_before = flat(victim.report.update).clone()
    knowledge = AttackRun(config, image, (0,), victim=victim).knowledge()
    assert knowledge.model is not victim.model and knowledge.shared_update is not victim.report.update
    theirs = {p.untyped_storage().data_ptr() for p in victim.model.parameters()}
    theirs |= {g.untyped_storage().data_ptr() for g in victim.report.update.gradients}
    mine = list(knowledge.model.parameters()) + list(knowledge.shared_update.gradients)
    assert not any(t.untyped_storage().data_ptr() in theirs for t in mine)
    # An attack in float64 casts its model and update in place: the victim's stay float32 and unchanged.
    for attack in ("idlg", "ig"):
        run = AttackRun(config.replace(attack=attack, precision="float64"), image, (0,), victim=victim)
        list(run)
        assert run.result.steps_run == 2
    assert all(p.dtype == torch.float32 and torch.equal(p, b) for p, b in zip(victim.model.parameters(), before,
                                                                                 strict=True))
    assert torch.equal(flat(victim.report.update), update_before)


def test_the_attackers_seed_is_its_own_spawn_and_does_not_determine_the_clients_noise(monkeypatch):
    seen = []
    real = run_module.ATTACKS["idlg"]

    def spy(knowledge, settings):
        seen.append(settings.seed)
        return real(knowledge, settings)

    monkeypatch.setitem(run_module.ATTACKS, "idlg", spy)
    config = AttackConfig(size=16, steps=1, defenses="gaussian:0.01")
    cat, dog = load_sample("cat_chelsea", 16), load_sample("dog_pekingese", 16)
    run_to_end(config, cat, (0,))
    assert seen == [attacker_seed(config.seed)] and seen[0] != config.seed
    assert attacker_seed(0) == attacker_seed(0) != attacker_seed(1)  # it replays, and follows the run's seed

    # Same run seed, so the same attacker seed, yet each photo's client draws other noise: the noise is no
    # function of what the attacker holds.
    noise = [flat(v.report.update) - flat(v.report.undefended) for v in (prepare_victim(config, x, (0,))
                                                                        for x in (cat, dog))]
    assert noise[0].abs().max() > 0 and not torch.allclose(noise[0], noise[1])
    # And drawing "the client's" noise from the attacker's seed, either way the code seeds a client, misses it.
    victim = prepare_victim(config, cat, (0,))
    specs = parse_defences(config.defenses)
    guesses = [apply_defences(victim.report.undefended, specs, seen[0]),
               client_update(victim.model, cat, torch.tensor([[1.0, 0.0]]), specs, seed=seen[0])]
    for guess in guesses:
        assert not torch.allclose(flat(guess), flat(victim.report.update))


def test_a_trained_victim_never_trained_on_the_attacked_photo():
    cat = load_sample("cat_chelsea", 16)
    photos, labels = training_set(16, cat)
    assert len(photos) == len(bundled_photos(16)[0]) - 1 and set(labels.tolist()) == {0, 1}
    assert not any(torch.allclose(p, cat[0], atol=1e-3) for p in photos)
    assert not photos_in_training_set(cat, 16)
    model = build_model("cnn", 16, 2, seed=0)
    left_out = train_victim(model, steps=3, seed=0, size=16, attacked=cat)
    everything = train_victim(model, steps=3, seed=0, size=16)
    assert not all(torch.equal(a, b) for a, b in zip(left_out.parameters(), everything.parameters(), strict=True))
    victim = prepare_victim(AttackConfig(model="cnn", size=16, trained_steps=3), cat, (0,))
    assert not victim.trained_on_photo and (victim.warning is None or TRAINED_ON_PHOTO not in victim.warning)
    for a, b in zip(victim.model.parameters(), left_out.parameters(), strict=True):
        assert torch.equal(a, b)  # the run's victim is the one trained without the photo


@pytest.mark.parametrize("trained_steps", [0, 3])
def test_when_every_bundled_photo_is_attacked_a_trained_victim_says_it_saw_them(trained_steps):
    everything, labels = bundled_photos(16)
    config = AttackConfig(model="cnn", size=16, trained_steps=trained_steps, classes=2)
    victim = prepare_victim(config, everything.clone(), tuple(labels.tolist()))
    assert victim.trained_on_photo == bool(trained_steps)
    assert (TRAINED_ON_PHOTO in (victim.warning or "")) == bool(trained_steps)
