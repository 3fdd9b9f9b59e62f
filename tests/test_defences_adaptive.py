"""The defences of issue 15 (signSGD, MixUp, Soteria), the attacker who knows the defence, and the federated
model that prices a defence: each defence changes exactly what it says, the attacker gets the spec but never the
client's noise, and the adaptive attacker gets through where the naive one fails."""

import json
import math

import pytest
import torch

from dlg_core import cli, photo_sets
from dlg_core.attacks.adaptive import adaptation, unmix, view
from dlg_core.attacks.base import AttackSettings
from dlg_core.client import SharedUpdate
from dlg_core.config import AttackConfig
from dlg_core.defences import (
    ClientBatch,
    apply_defences,
    client_seed,
    client_update,
    mix_inputs,
    parse_defence,
    parse_defences,
    parse_strengths,
    soteria_layer,
    soteria_scores,
)
from dlg_core.errors import BadInputError
from dlg_core.experiment import Grid, Job, run_job
from dlg_core.images import load_sample, public_pool, to_tensor
from dlg_core.models import build_model
from dlg_core.run import AttackRun, prepare_victim
from dlg_core.utility import UtilitySetting, utility

TINY_UTILITY = UtilitySetting(clients=2, rounds=12, batch=4, photos_per_client=9, test_photos=45, pool_photos=9)


def random_update(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return SharedUpdate(tuple(torch.randn(s, generator=generator) for s in ((8, 3, 5, 5), (8,), (2, 40))))


def test_sign_shares_signs_times_each_tensors_mean_magnitude():
    update = random_update(1)
    shared = apply_defences(update, parse_defences("sign"), 0)
    for g, s in zip(update.gradients, shared.gradients, strict=True):
        scale = g.abs().mean()
        assert torch.allclose(s.abs(), scale.expand_as(s)) and torch.equal(s.sign(), g.sign())


def test_mixup_mixes_each_photo_with_another_pool_photo_and_the_labels_alike():
    pool = public_pool(16, 3)
    photos = pool[0][:2]  # photos that are in the pool themselves: never mixed with themselves
    probs = torch.nn.functional.one_hot(torch.tensor([2, 2]), 3).float()
    mixed, mixed_probs = mix_inputs(photos, probs, pool, 0.25, torch.Generator().manual_seed(0))
    for photo, mix, p in zip(photos, mixed, mixed_probs, strict=True):
        partners = [j for j in range(len(pool[0]))
                    if torch.allclose(mix, 0.75 * photo + 0.25 * pool[0][j], atol=1e-6)]
        assert len(partners) == 1 and not torch.equal(pool[0][partners[0]], photo)
        assert torch.allclose(p, 0.75 * torch.tensor([0, 0, 1.0]) + 0.25 * pool[1][partners[0]])
        assert p.sum() == pytest.approx(1.0)


def test_mixup_acts_on_the_input_the_update_is_computed_from():
    model = build_model("lenet", 16, 2, seed=0)
    image = load_sample("cat_chelsea", 16)
    probs = torch.tensor([[1.0, 0.0]])
    shared = client_update(model, image, probs, parse_defences("mixup:0.5"), seed=3, pool=public_pool(16, 2))
    generator = torch.Generator().manual_seed(3)
    mixed, mixed_probs = mix_inputs(image, probs, public_pool(16, 2), 0.5, generator)
    expected = client_update(model, mixed, mixed_probs, (), seed=0)
    assert all(torch.allclose(a, b) for a, b in zip(shared.gradients, expected.gradients, strict=True))


def test_soteria_prunes_the_first_linear_layers_columns_with_the_lowest_scores():
    model = build_model("wide_cnn", 16, 2, seed=0)
    image = load_sample("dog_pekingese", 16)
    probs = torch.tensor([[0.0, 1.0]])
    true = client_update(model, image, probs, (), seed=0)
    shared = client_update(model, image, probs, parse_defences("soteria:0.4"), seed=5)
    name, index = soteria_layer(model)
    assert isinstance(model.get_submodule(name), torch.nn.Linear)
    assert true.gradients[index].shape == model.get_submodule(name).weight.shape
    features = true.gradients[index].shape[1]
    pruned = (shared.gradients[index] == 0).all(dim=0)
    assert int(pruned.sum()) == math.floor(0.4 * features)
    scores = soteria_scores(model, image, torch.Generator().manual_seed(5))
    assert set(scores.argsort()[:int(pruned.sum())].tolist()) == set(pruned.nonzero().flatten().tolist())
    kept = ~pruned
    assert torch.equal(shared.gradients[index][:, kept], true.gradients[index][:, kept])
    for i, (a, b) in enumerate(zip(shared.gradients, true.gradients, strict=True)):
        if i != index:
            assert torch.equal(a, b)  # every other layer is shared as it is


def test_soteria_needs_a_linear_layer_and_the_client():
    with pytest.raises(BadInputError, match="fully-connected"):
        soteria_layer(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3)))
    with pytest.raises(BadInputError, match="public pool"):
        client_update(build_model("lenet", 16, 2), load_sample("cat_chelsea", 16), torch.tensor([[1.0, 0.0]]),
                      parse_defences("mixup:0.5"), seed=0)
    with pytest.raises(BadInputError, match="on the client"):
        apply_defences(random_update(), parse_defences("soteria:0.5"), 0)
    model = build_model("lenet", 16, 2)
    client = ClientBatch(model, load_sample("cat_chelsea", 16), torch.tensor([[1.0, 0.0]]))
    same = apply_defences(random_update(), parse_defences("mixup:0.5"), 0, client)  # it acted on the input already
    assert all(torch.equal(a, b) for a, b in zip(same.gradients, random_update().gradients, strict=True))


@pytest.mark.parametrize("spec, fragment", [
    ("sign:1", "written sign"), ("mixup:0.7", "SHARE <= 0.5"), ("mixup:0", "0 < SHARE"), ("mixup", "mixup:SHARE"),
    ("soteria:1", "FRACTION < 1"), ("soteria:x", "unreadable"), ("soteria", "soteria:FRACTION_REMOVED"),
])
def test_bad_new_specs_are_refused_in_one_line(spec, fragment):
    with pytest.raises(BadInputError) as caught:
        parse_defences(spec)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_strengths_are_parsed_weakest_first_and_of_one_kind():
    assert [d.spec for d in parse_strengths("mixup", ["mixup:0.5"], "mixup:0.1; mixup:0.25")] == [
        "mixup:0.1", "mixup:0.25", "mixup:0.5"]
    with pytest.raises(BadInputError, match="not a soteria"):
        parse_strengths("soteria", [], "prune:0.5")


def test_the_attacker_gets_the_spec_but_cannot_draw_the_clients_noise_again():
    image = load_sample("cat_chelsea", 16)
    config = AttackConfig(size=16, defenses="gaussian:0.01", adaptive=True)
    victim = prepare_victim(config, image, (0,))
    knowledge = AttackRun(config, image, (0,), victim=victim).knowledge()
    assert knowledge.defences == "gaussian:0.01" and knowledge.public_photos is None
    mixing = AttackRun(config.replace(defenses="mixup:0.25"), image, (0,)).knowledge()
    assert mixing.public_photos is not None and mixing.public_photos.shape[1:] == image.shape[1:]  # the public pool
    assert not any(v is victim.report.undefended for v in vars(knowledge).values())
    shared = torch.cat([g.flatten() for g in knowledge.shared_update.gradients])
    # Noise drawn from the seed the attacker knows (the old way) is not the client's noise.
    guessed = apply_defences(victim.report.undefended, parse_defences(config.defenses), config.seed)
    assert not torch.allclose(shared, torch.cat([g.flatten() for g in guessed.gradients]))
    # The client's seed comes from its photo and the run's seed: a run replays, another photo draws other noise.
    assert client_seed(image, 0) == client_seed(image.clone(), 0) != client_seed(load_sample("dog_pekingese", 16), 0)
    again = prepare_victim(config, image, (0,)).report.update
    assert torch.equal(shared, torch.cat([g.flatten() for g in again.gradients]))


def test_the_adaptive_view_masks_pruned_entries_and_ignores_the_naive_attacker():
    image = load_sample("cat_chelsea", 16)
    config = AttackConfig(size=16, defenses="prune:0.5", adaptive=True)
    knowledge = AttackRun(config, image, (0,)).knowledge()
    assert adaptation(knowledge, AttackSettings(adaptive=False)) is None
    adapt = adaptation(knowledge, AttackSettings(adaptive=True))
    target = knowledge.shared_update.gradients
    candidate = [torch.randn_like(g) for g in target]
    moved = [c + 5 * (g == 0) for c, g in zip(candidate, target, strict=True)]  # change only pruned entries
    assert all(torch.equal(a, b) for a, b in zip(view(adapt, candidate, target)[0], view(adapt, moved, target)[0],
                                                strict=True))


def test_unmix_recovers_the_private_part_of_a_mix_with_a_pool_photo():
    pool, _ = public_pool(16, 2)
    photo = load_sample("cat_chelsea", 16)
    others = pool[1:]  # the pool photos that are not the private one
    mixed = 0.6 * photo + 0.4 * others[2:3]
    assert torch.allclose(unmix(mixed, 0.4, pool), photo, atol=1e-5)


def _final_psnr(config, image):
    run = AttackRun(config, image, (0,))
    for _ in run:
        pass
    return run.result.final.psnr


@pytest.mark.parametrize("spec", ["prune:0.5", "mixup:0.5"])
def test_the_adaptive_attacker_gets_through_where_the_naive_one_fails(spec):
    # A photo outside MixUp's public pool: mixed half and half with a pool photo, a pool photo could be either.
    image = to_tensor(photo_sets.photo(photo_sets.REPORT[2], 64), 16)
    config = AttackConfig(size=16, steps=25, defenses=spec)
    naive, adaptive = _final_psnr(config, image), _final_psnr(config.replace(adaptive=True), image)
    assert naive < 20 and adaptive >= 30, (naive, adaptive)


def test_utility_is_the_accuracy_after_federated_rounds_and_noise_costs_it():
    plain = utility("", TINY_UTILITY)
    assert plain.accuracy == plain.undefended_accuracy and 0 <= plain.accuracy <= 1
    assert plain.chance == pytest.approx(1 / 9) and plain.accuracy > plain.chance  # the model learns something
    noisy = utility("gaussian:5", TINY_UTILITY)
    assert noisy.undefended_accuracy == plain.accuracy and noisy.accuracy < plain.accuracy
    assert utility("gaussian:5", TINY_UTILITY) == noisy  # seeded: the same again


def test_experiment_rows_carry_the_attacker_and_the_federated_accuracy():
    grid = Grid(images=("cat_chelsea",), defenses=("", "prune:0.5"), attackers=("naive", "adaptive"))
    jobs = grid.jobs()
    assert [(j.defenses, j.attacker) for j in jobs] == [("", "naive"), ("prune:0.5", "naive"),
                                                        ("prune:0.5", "adaptive")]
    assert "adaptive" in jobs[2].key and "adaptive" not in jobs[1].key
    with pytest.raises(BadInputError, match="Unknown attacker"):
        Grid(attackers=("clever",)).jobs()
    row = run_job(Job(images=("cat_chelsea",), labels=(0,), size=16, steps=2, defenses="sign", attacker="adaptive"))
    assert row["status"] == "ok" and row["attacker"] == "adaptive"
    assert json.loads(row["config"])["adaptive"] is True
    assert 0 <= row["utility_accuracy"] <= 1 and row["utility_rounds"] == UtilitySetting().rounds


def test_cli_adaptive_is_recorded_in_the_run_json(tmp_path):
    out = tmp_path / "run.json"
    code = cli.main(["run", "--image", "assets/samples/cat_chelsea.jpg", "--size", "16", "--steps", "2", "--quiet",
                     "--defense", "soteria:0.5", "--adaptive", "--json", str(out)])
    result = json.loads(out.read_text())
    assert code == 0 and result["config"]["adaptive"] is True and result["defenses"] == ["soteria:0.5"]


def test_every_new_spec_round_trips():
    for spec in ("sign", "mixup:0.25", "soteria:0.9"):
        assert parse_defence(spec).spec == spec and parse_defence(spec).label
