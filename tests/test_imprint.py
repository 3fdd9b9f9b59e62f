"""The malicious server's imprint attack, and many clients behind secure aggregation (tiny sizes: seconds)."""

from __future__ import annotations

import gc
import json

import pytest
import torch

from dlg_core import cli, limits, photo_sets
from dlg_core.attacks import ATTACKS, AttackerKnowledge, AttackSettings
from dlg_core.attacks.imprint import ImprintedModel, malicious_model
from dlg_core.client import client_photos, compute_shared_update, federated_round
from dlg_core.config import DEFAULT
from dlg_core.errors import BadInputError
from dlg_core.experiment import SAMPLE_NAMES, Grid, run_job, summarise
from dlg_core.models import build_model
from dlg_core.run import AttackRun, run_to_end


def crops(count: int, side: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(photo_sets.distinct_crops(count, side, seed=seed)).permute(0, 3, 1, 2).float() / 255


def labels(count: int) -> list[int]:
    return [i % 2 for i in range(count)]


@pytest.mark.parametrize("clients", [1, 4])
def test_imprint_recovers_a_batch_of_8_exactly(clients):
    images = crops(8, 16, seed=1)  # seed 0's batch has two photos in one bin: see the next test
    result = run_to_end(DEFAULT.replace(attack="imprint", size=16, clients=clients), images, labels(8))
    scores = [s.psnr for s in result.final.per_image]
    assert len(scores) == 8 and min(scores) >= 50, scores  # aggregation does not save a single photo
    assert result.status == "ok" and result.evals == 1
    assert sorted(result.label_guess) == sorted(labels(8))
    out = result.to_json_dict()
    json.dumps(out, allow_nan=False)  # an exact copy's infinite PSNR is null, not Infinity
    assert out["clients"] == clients and len(out["per_image"]) == 8


def test_two_photos_in_one_bin_come_back_as_their_blend_and_the_rest_exactly():
    images = crops(8, 16, seed=0)  # photos 3 and 7 measure -0.003 and -0.004: the same bin of the ladder
    result = run_to_end(DEFAULT.replace(attack="imprint", size=16), images, labels(8))
    scores = [s.psnr for s in result.final.per_image]
    assert [i for i, psnr in enumerate(scores) if psnr < 50] == [3, 7], scores
    blend = result.final.image[3:4]  # paired with photo 3: between photos 3 and 7, not grey
    assert ((blend - images[3:4]) ** 2).mean() < ((images[7:8] - images[3:4]) ** 2).mean()


def test_honest_attacks_learn_nothing_new_from_the_imprinted_model_they_never_get():
    images = crops(2, 16)
    victim = AttackRun(DEFAULT.replace(attack="idlg", size=16), images, labels(2)).victim
    assert not isinstance(victim.model, ImprintedModel)  # only the malicious server sends one
    knowledge = AttackerKnowledge(victim.model, victim.report.update, tuple(images.shape), 2)
    with pytest.raises(BadInputError, match="imprint block"):
        ATTACKS["imprint"](knowledge, AttackSettings())


def test_imprinted_model_barely_changes_what_the_victim_computes():
    images = crops(4, 16)
    victim = build_model("wide_cnn", 16, 2, seed=0)
    server = malicious_model(victim, tuple(images.shape), seed=0)
    with torch.no_grad():
        assert torch.allclose(server(images), victim(images), atol=1e-2)
        shift = (server.imprint(images) - images).abs().max()
    assert 0 < shift < 1e-2


def test_batch_limits_are_enforced_with_one_line(capsys):
    assert limits.max_batch("imprint") == limits.MAX_IMPRINT_BATCH >= 64 > limits.max_batch("idlg")
    code = cli.main(["run", "--attack", "imprint", "--crops", str(limits.MAX_IMPRINT_BATCH + 1), "--size", "16",
                     "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "1 to 64 photos" in err[0], err
    code = cli.main(["run", "--crops", "9", "--size", "16", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the imprint attack takes up to 64" in err[0], err
    with pytest.raises(BadInputError, match="1 to 8 photos"):
        AttackRun(DEFAULT.replace(size=16), crops(9, 16), labels(9))
    with pytest.raises(BadInputError, match="3 clients need at least 3 photos"):
        AttackRun(DEFAULT.replace(size=16, clients=3), crops(2, 16), labels(2))


def test_cli_attacks_crops_shared_by_clients(capsys, tmp_path):
    out = tmp_path / "run.json"
    code = cli.main(["run", "--attack", "imprint", "--crops", "12", "--clients", "3", "--size", "16", "--quiet",
                     "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["clients"] == 3 and len(result["per_image"]) == 12
    assert "of 12 photos at 50 dB" in capsys.readouterr().out


def test_aggregate_is_the_sum_of_the_clients_updates_over_their_photos():
    images, target = crops(3, 16), torch.tensor([0, 1, 1])
    model = build_model("wide_cnn", 16, 2, seed=0)
    assert client_photos(3, 3) == [[0], [1], [2]] and client_photos(5, 2) == [[0, 2, 4], [1, 3]]
    aggregate = federated_round(model, images, target, clients=3).update
    singles = [compute_shared_update(model, images[i:i + 1], target[i:i + 1]).update for i in range(3)]
    for i, shared in enumerate(aggregate.gradients):
        assert torch.allclose(3 * shared, sum(s.gradients[i] for s in singles), atol=1e-6)
    batch = compute_shared_update(model, images, target).update  # FedSGD: the aggregate is the batch gradient
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(aggregate.gradients, batch.gradients, strict=True))


def _tensors_reachable(root, limit: int = 200_000) -> list[torch.Tensor]:
    """Every tensor the object graph under ``root`` reaches (modules, dataclasses, closures, containers)."""
    seen, stack, found = set(), [root], []
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, str, bytes, int, float)):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append(obj)
            continue
        stack.extend(gc.get_referents(obj))
    return found


@pytest.mark.parametrize("attack", ["idlg", "imprint"])
def test_attackers_knowledge_holds_no_client_photo(attack):
    images = crops(4, 16)
    run = AttackRun(DEFAULT.replace(attack=attack, size=16, clients=4, steps=1), images, labels(4))
    knowledge = run.knowledge()
    tensors = _tensors_reachable(knowledge)
    assert len(tensors) > 5  # the walk reached the model's parameters and the update
    photo_storage = {run.images.untyped_storage().data_ptr(), images.untyped_storage().data_ptr()}
    for tensor in tensors:
        assert tensor.untyped_storage().data_ptr() not in photo_storage
        if tensor.shape[-3:] == images.shape[-3:]:
            assert not any(torch.equal(tensor.reshape(-1, *images.shape[1:])[0], photo) for photo in images)
    fields = set(vars(knowledge))  # no client, no photo; the labels only when the threat model says so
    assert fields == {"model", "shared_update", "input_shape", "num_classes", "known_labels", "defences",
                      "public_photos"}
    assert knowledge.defences == "" and knowledge.public_photos is None  # no defence prescribed, no MixUp pool
    assert knowledge.known_labels is None


def test_threat_model_switches_labels_known_and_batchnorm_in_training_mode():
    images = crops(2, 16)
    told = AttackRun(DEFAULT.replace(size=16, labels_known=True), images, [1, 0])
    assert told.knowledge().known_labels == (1, 0)
    config = DEFAULT.replace(model="resnet", size=16, batchnorm_train=True, steps=2)
    run = AttackRun(config, images, [1, 0])
    model = run.knowledge().model
    fresh = build_model("resnet", 16, 2, seed=run.victim.seed)
    assert model.training  # the attacker's candidates are normalised by their own batch, as the client's were
    # ... and the client's batch statistics never reach it: the running ones are still the fresh model's.
    for (name, mine), (_, theirs) in zip(model.named_buffers(), fresh.named_buffers(), strict=True):
        assert torch.equal(mine, theirs), name
    assert run_to_end(config, images, [1, 0]).status in ("ok", "stopped", "timeout")


def test_a_batch_with_an_exact_copy_counts_as_a_success_in_the_summary():
    rows = [{"attack": "imprint", "status": "ok", "final_psnr": "", "final_mse": "1.6e-16"},
            {"attack": "imprint", "status": "ok", "final_psnr": "12.0", "final_mse": "0.06"}]
    (line,) = summarise(rows, ("attack",))
    assert line["success_rate"] == 0.5 and line["median_psnr"] > 30


def test_experiment_grid_has_a_clients_axis():
    grid = Grid(images=SAMPLE_NAMES[:4], attacks=("imprint",), models=("wide_cnn",), sizes=(16,), clients=(1, 2),
                steps=2, photo_per_seed=True)
    jobs = grid.jobs()
    assert [job.clients for job in jobs] == [1, 2] and [len(job.images) for job in jobs] == [1, 2]
    row = run_job(jobs[1])
    assert row["status"] == "ok" and row["clients"] == 2
    assert all(score["psnr"] is None or score["psnr"] >= 50 for score in json.loads(row["per_image"]))
    with pytest.raises(BadInputError, match="need 8 distinct photos"):
        Grid(images=grid.images, attacks=("idlg",), clients=(8,)).jobs()
