"""Beyond DLG: closed-form recovery, Inverting Gradients, batches and their labels, FedAvg, deeper and trained
victims. Fast: one torch thread, small images, few steps."""

import copy
import dataclasses
import random

import pytest
import torch
import torch.nn.functional as F

from dlg_core.attacks import ATTACKS, AttackerKnowledge, AttackSettings, infer_batch_labels, label_counts
from dlg_core.attacks.analytic import NEEDS_MLP
from dlg_core.attacks.base import candidate_gradients
from dlg_core.client import compute_fedavg_update, compute_shared_update, local_training_update
from dlg_core.errors import BadInputError
from dlg_core.images import SAMPLES, load_sample
from dlg_core.matching import match_reconstructions, matched_metrics, reorder_labels
from dlg_core.metrics import image_metrics, label_accuracy
from dlg_core.models import MODEL_NAMES, build_model
from dlg_core.training import train_victim, training_loss

torch.set_num_threads(1)


def knowledge_of(model, images, labels, classes, report=None):
    report = report or compute_shared_update(model, images, torch.tensor(labels))
    return AttackerKnowledge(model, report.update, tuple(images.shape), classes)


@pytest.fixture(scope="module")
def photos32():
    return torch.cat([load_sample(s.name, 32) for s in SAMPLES])


# --- closed-form recovery ------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_closed_form_rebuilds_an_mlp_victims_photo_exactly(activation):
    photo = load_sample("dog_pekingese", 64)
    model = build_model("mlp", 64, 10, seed=3, activation=activation)
    progress = list(ATTACKS["analytic"](knowledge_of(model, photo, [7], 10), AttackSettings()))
    assert len(progress) == 1 and progress[0].step == 1
    assert image_metrics(progress[0].reconstruction, photo).psnr >= 50
    assert progress[0].label_guess == (7,)
    assert progress[0].gradient_distance < 1e-6


def test_closed_form_is_exact_on_a_fedavg_update_too():
    photo = load_sample("cat_chelsea", 32)
    model = build_model("mlp", 32, 2, seed=0)
    report = compute_fedavg_update(model, photo, torch.tensor([0]), local_steps=4, local_lr=0.5)
    final = list(ATTACKS["analytic"](knowledge_of(model, photo, [0], 2, report), AttackSettings()))[-1]
    assert image_metrics(final.reconstruction, photo).psnr >= 50


@pytest.mark.parametrize("name", ["lenet", "cnn", "resnet"])
def test_closed_form_refuses_victims_whose_first_layer_is_not_fully_connected(name, photos32):
    model = build_model(name, 32, 2, seed=0)
    with pytest.raises(BadInputError, match="first layer is fully connected") as err:
        ATTACKS["analytic"](knowledge_of(model, photos32[:1], [0], 2), AttackSettings())  # refused at once
    assert str(err.value) == NEEDS_MLP


def test_closed_form_on_a_batch(photos32):
    labels = [1, 4, 6, 8]
    # A ReLU mlp: some units are switched on by one photo only, and their rows give that photo exactly.
    relu = build_model("mlp", 32, 10, seed=0, activation="relu")
    final = list(ATTACKS["analytic"](knowledge_of(relu, photos32[:4], labels, 10), AttackSettings()))[-1]
    assert final.reconstruction.shape == (4, 3, 32, 32)
    match = matched_metrics(final.reconstruction, photos32[:4])
    assert sorted(match.order) == [0, 1, 2, 3]
    assert min(s.psnr for s in match.per_image) >= 50
    assert final.label_guess == tuple(labels)
    # A sigmoid mlp: every unit sees every photo, so each row is a blend. Images come back, not photos.
    sigmoid = build_model("mlp", 32, 10, seed=0)
    final = list(ATTACKS["analytic"](knowledge_of(sigmoid, photos32[:4], labels, 10), AttackSettings()))[-1]
    assert final.reconstruction.shape == (4, 3, 32, 32)
    assert final.reconstruction.min() >= 0 and final.reconstruction.max() <= 1
    assert matched_metrics(final.reconstruction, photos32[:4]).mean_psnr < 40


# --- Inverting Gradients -------------------------------------------------------------------------------

def test_inverting_gradients_rebuilds_a_photo_from_a_relu_cnn():
    photo = load_sample("dog_german_shepherd", 32)
    model = build_model("cnn", 32, 10, seed=0, activation="relu")
    settings = AttackSettings(steps=1500, init="uniform", seed=0)
    reports = list(ATTACKS["ig"](knowledge_of(model, photo, [2], 10), settings))
    assert [p.step for p in reports] == list(range(1501))  # a frame per step, for the live view
    assert reports[-1].evals == 1501
    final = reports[-1]
    assert final.label_guess == (2,)
    assert final.reconstruction.min() >= 0 and final.reconstruction.max() <= 1  # kept in the valid box
    assert image_metrics(final.reconstruction, photo).psnr >= 20


def test_inverting_gradients_restarts_and_batches(photos32):
    model = build_model("lenet", 16, 10, seed=1)
    images = F.interpolate(photos32[:2], size=16, mode="area")
    settings = AttackSettings(steps=30, restarts=3, seed=0)
    reports = list(ATTACKS["ig"](knowledge_of(model, images, [2, 5], 10), settings))
    assert [p.step for p in reports] == list(range(31))  # `steps` is the whole budget, shared by restarts
    assert reports[-1].evals == 30 + 3  # each restart's final image is scored once more
    assert {p.restart for p in reports} <= {0, 1, 2}
    assert reports[-1].reconstruction.shape == (2, 3, 16, 16)
    assert reports[-1].label_guess == (2, 5)
    # Each restart has 10 steps; step 10 shows restart 0's final image. From then on, what is shown is the
    # best restart so far, so its distance never exceeds that finished restart's.
    assert reports[10].restart == 0
    assert all(p.gradient_distance <= reports[10].gradient_distance for p in reports[11:])


def test_inverting_gradients_polish_closes_the_gap_on_a_sigmoid_victim():
    # Adam on the sign ends near the photo, not on it; the last steps as L-BFGS on the cosine distance alone
    # (polish_steps) take a sigmoid victim's photo past 30 dB with the same step budget.
    photo = load_sample("cat_chelsea", 16)
    knowledge = knowledge_of(build_model("lenet", 16, 10, seed=0), photo, [3], 10)
    lbfgs = dict(line_search="strong_wolfe", lbfgs="compact", max_iter=5, history_size=300)
    plain = list(ATTACKS["ig"](knowledge, AttackSettings(steps=150, init="grey", **lbfgs)))
    polished = list(ATTACKS["ig"](knowledge, AttackSettings(steps=150, polish_steps=30, init="grey", **lbfgs)))
    assert [p.step for p in polished] == list(range(151))  # still a frame per step, the budget unchanged
    assert polished[-1].evals > 151  # an L-BFGS step may evaluate several times
    assert polished[-1].label_guess == (3,)
    assert image_metrics(plain[-1].reconstruction, photo).psnr < 30
    assert image_metrics(polished[-1].reconstruction.clamp(0, 1), photo).psnr >= 40


def test_inverting_gradients_polish_starts_again_from_its_best_point_blurred_after_a_stall(monkeypatch):
    # A scripted L-BFGS: each leg improves for 3 steps, then stalls (5 steps without an evaluation). The second
    # leg starts from the first's best point blurred and finds better; the third finds nothing better: the end.
    import dlg_core.attacks.inverting as inverting
    from dlg_core.attacks import Progress
    from dlg_core.attacks.prior import smoothed

    photo = load_sample("cat_chelsea", 16)
    knowledge = knowledge_of(build_model("lenet", 16, 10, seed=0), photo, [3], 10)
    starts, leg_best = [], [0.5, 0.4, 0.45]

    def scripted(knowledge, settings, known_labels):
        starts.append(settings.start_image.clone())
        leg = len(starts) - 1
        image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(leg))
        distances = [1.0, 0.9, 0.7, leg_best[leg]] + [leg_best[leg]] * 5
        for step, distance in enumerate(distances[:settings.steps + 1]):
            yield Progress(step, 1 + 3 * min(step, 3), image, known_labels, torch.zeros(1, 10), distance)

    monkeypatch.setattr(inverting, "match_gradients", scripted)
    polished = list(ATTACKS["ig"](knowledge, AttackSettings(steps=40, polish_steps=30, init="grey")))
    assert len(starts) == 3
    first_best = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(starts[1], smoothed(first_best, inverting.POLISH_SMOOTH_SIGMA))
    assert [p.step for p in polished] == list(range(41))  # a frame per step, the last ones repeating the best
    assert polished[-1].gradient_distance == 0.4
    assert polished[-1].evals == 11 + 3 * 10  # Adam's 11 evaluations, then 10 per leg


# --- labels of a batch ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("classes", [10, 100])
def test_batch_labels_are_right_for_four_distinct_labels(name, classes, photos32):
    rng = random.Random(classes)
    for seed in range(3):
        labels = rng.sample(range(classes), 4)
        model = build_model(name, 32, classes, seed)
        assert infer_batch_labels(knowledge_of(model, photos32[[0, 2, 4, 5]], labels, classes)) == tuple(sorted(labels))


def test_batch_labels_count_repeated_labels(photos32):
    # Counting needs the batch's mean prediction, estimated from dummy images: right on almost all freshly
    # drawn victims, and never far off.
    rng = random.Random(0)
    exact = cases = 0
    for name in MODEL_NAMES:
        for seed in range(3):
            for classes in (2, 10):
                batch = rng.choice([4, 8])
                labels = [rng.randrange(3 if classes > 2 else 2) for _ in range(batch)]
                images = photos32[[rng.randrange(6) for _ in range(batch)]]
                guess = infer_batch_labels(knowledge_of(build_model(name, 32, classes, seed), images, labels, classes))
                assert len(guess) == batch
                assert label_accuracy(guess, labels) >= 0.75, (name, seed, classes, labels, guess)
                exact += guess == tuple(sorted(labels))
                cases += 1
    assert exact >= 0.9 * cases


def test_one_image_label_agrees_with_idlg(photos32):
    for name in MODEL_NAMES:
        model = build_model(name, 32, 100, seed=2)
        assert infer_batch_labels(knowledge_of(model, photos32[:1], [42], 100)) == (42,)


def test_proven_labels_are_really_there_even_on_a_trained_victim(photos32):
    model = train_victim(build_model("lenet", 32, 10, seed=0), steps=60, seed=0, size=32)
    for labels in ([0, 0, 1, 1], [0, 3, 3, 7], [1, 1, 1, 1]):
        counts = label_counts(knowledge_of(model, photos32[[0, 1, 4, 5]], labels, 10))
        assert set(counts.proven_present) <= set(labels)
        assert len(counts.labels) == 4 and counts.estimated_counts.shape == (10,)


# --- matching a batch to its originals -----------------------------------------------------------------

def test_matching_pairs_each_reconstruction_with_its_original(photos32):
    originals = photos32[:5]
    shuffle = [3, 0, 4, 1, 2]  # reconstruction j is a noisy copy of original shuffle[j]
    noisy = (originals[shuffle] + 0.05 * torch.randn(originals.shape, generator=torch.Generator().manual_seed(0)))
    order = match_reconstructions(noisy, originals)
    assert [shuffle[j] for j in order] == [0, 1, 2, 3, 4]
    match = matched_metrics(noisy, originals)
    assert match.order == order
    assert all(24 < s.psnr < 28 and 0 < s.ssim < 1 for s in match.per_image)  # noise of 0.05: about 26 dB
    assert match.batch.psnr == pytest.approx(image_metrics(noisy.clamp(0, 1)[list(order)], originals).psnr)
    assert reorder_labels((10, 11, 12, 13, 14), order) == tuple(10 + j for j in order)
    with pytest.raises(ValueError):
        match_reconstructions(noisy[:4], originals)


# --- FedAvg --------------------------------------------------------------------------------------------

def test_fedavg_with_one_local_step_is_fedsgd(photos32):
    model = build_model("cnn", 32, 10, seed=0)
    images, labels = photos32[:3], torch.tensor([1, 2, 3])
    fedsgd = compute_shared_update(model, images, labels)
    fedavg = compute_fedavg_update(model, images, labels, local_steps=1, local_lr=0.1)
    assert fedavg.loss == pytest.approx(fedsgd.loss) and fedavg.update.local_steps == 1
    for a, b in zip(fedavg.update.gradients, fedsgd.update.gradients, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    # The attacker's differentiable replay agrees as well, step count 1 or not short-circuited.
    one_hot = F.one_hot(labels, 10).float()
    replayed = local_training_update(model, images, one_hot, 1, 0.1, create_graph=True)
    for a, b in zip(replayed, fedsgd.update.gradients, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_fedavg_update_is_the_weight_change_over_steps_times_lr(photos32):
    model = build_model("lenet", 32, 10, seed=0).double()  # float64: the weight difference keeps its digits
    images, labels = photos32[:2].double(), torch.tensor([4, 9])
    before = copy.deepcopy(model.state_dict())
    report = compute_fedavg_update(model, images, labels, local_steps=3, local_lr=0.05)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the server's model is intact

    local = copy.deepcopy(model)
    optimizer = torch.optim.SGD(local.parameters(), lr=0.05)
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(local(images), labels).backward()
        optimizer.step()
    for shared, w0, w3 in zip(report.update.gradients, model.parameters(), local.parameters(), strict=True):
        assert torch.allclose(shared, (w0 - w3) / (3 * 0.05), rtol=1e-6, atol=1e-10)

    # The attacker replays the same three steps on the true batch and gets the same update, differentiably.
    params = list(model.parameters())
    replay = candidate_gradients(model, params, images, F.one_hot(labels, 10).double(), 3, 0.05)
    for a, b in zip(replay, report.update.gradients, strict=True):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-12)
    assert replay[0].requires_grad


def test_an_attack_replays_fedavg_local_steps():
    photo = load_sample("cat_chelsea", 16)
    model = build_model("lenet", 16, 10, seed=0)
    report = compute_fedavg_update(model, photo, torch.tensor([3]), local_steps=3, local_lr=0.1)
    settings = AttackSettings(steps=25, init="grey", line_search="strong_wolfe", lbfgs="compact", history_size=300)
    final = list(ATTACKS["idlg"](knowledge_of(model, photo, [3], 10, report), settings))[-1]
    assert final.label_guess == (3,)
    assert image_metrics(final.reconstruction, photo).psnr >= 30


def test_inverting_gradients_replays_fedavg_local_steps_too():
    photo = load_sample("cat_chelsea", 16)
    model = build_model("cnn", 16, 10, seed=0, activation="relu")
    report = compute_fedavg_update(model, photo, torch.tensor([3]), local_steps=3, local_lr=0.1)
    at_truth = AttackSettings(steps=1, start_image=photo, tv_weight=0.0)
    first = next(iter(ATTACKS["ig"](knowledge_of(model, photo, [3], 10, report), at_truth)))
    assert first.step == 0 and first.gradient_distance < 1e-5  # the true photo explains the update exactly
    fedsgd_view = dataclasses.replace(report.update, local_steps=1)  # an attacker ignoring the local steps
    first = next(iter(ATTACKS["ig"](AttackerKnowledge(model, fedsgd_view, tuple(photo.shape), 10), at_truth)))
    assert first.gradient_distance > 1e-3


# --- deeper and trained victims ------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64])
def test_resnet_builds_and_produces_a_gradient(size, photos32):
    model = build_model("resnet", size, 10, seed=0)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) and not model.training
    images = torch.cat([load_sample("cat_chelsea", size), load_sample("dog_pekingese", size)])
    report = compute_shared_update(model, images, torch.tensor([3, 5]))
    assert len(report.update.gradients) == len(list(model.parameters()))
    assert all(torch.isfinite(g).all() for g in report.update.gradients)
    assert report.update.norm > 1e-3
    # BatchNorm in eval mode uses fixed statistics: each image's gradient is its own, whatever the batch.
    alone = [compute_shared_update(model, images[i:i + 1], torch.tensor([label])).update.gradients
             for i, label in enumerate([3, 5])]
    for together, first, second in zip(report.update.gradients, *alone, strict=True):
        assert torch.allclose(together, (first + second) / 2, rtol=1e-4, atol=1e-6)


def test_relu_cnn_gets_its_own_initialisation_and_the_sigmoid_cnn_keeps_dlgs():
    sigmoid = build_model("cnn", 32, 2, seed=0)
    assert all(p.abs().max() <= 0.5 for p in sigmoid.parameters())
    assert all(p.abs().max() > 0.4 for p in sigmoid.parameters() if p.numel() >= 16)  # U(-0.5, 0.5), as before
    relu = build_model("cnn", 32, 2, seed=0, activation="relu")
    first = relu[0]
    assert first.weight.abs().max() <= 27**-0.5 and sum(isinstance(m, torch.nn.ReLU) for m in relu) == 4


def test_size_limit_can_be_raised_for_offline_measurements_only():
    with pytest.raises(BadInputError):
        build_model("mlp", 224, 2)
    model = build_model("mlp", 160, 2, max_size=224)
    assert model(torch.rand(1, 3, 160, 160)).shape == (1, 2)


def test_a_trained_victim_has_learnt_and_the_original_is_untouched():
    model = build_model("cnn", 32, 2, seed=0, activation="relu")
    original = copy.deepcopy(model.state_dict())
    trained = train_victim(model, steps=80, seed=0, size=32)
    assert training_loss(trained) < 0.5 * training_loss(model)
    assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())
    again = train_victim(model, steps=80, seed=0, size=32)
    assert all(torch.equal(a, b) for a, b in zip(trained.parameters(), again.parameters(), strict=True))
    assert not trained.training
