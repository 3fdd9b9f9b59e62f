"""The Streamlit app through AppTest: every page renders, a short attack runs to its summary, bad uploads and
bad links give clear errors, and a shared link restores its run. Attacks here are tiny (16 px, 5 steps)."""

from __future__ import annotations

import io
import itertools
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from dlg_core.config import DEFAULT, AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.images import SAMPLES, sample
from ui import history as history_module
from ui.history import RunHistory
from ui.link import link_params, parse_link
from ui.photo import photo_from_bytes

QUICK = {"size": "16", "steps": "5"}


def jpeg_bytes(w: int = 64, h: int = 48) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def quick_settings(at) -> None:
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="cfg_steps").set_value(5)


# --- pages ------------------------------------------------------------------------------------------------


def test_attack_lab_renders_with_defaults(app_test):
    at = app_test().run()
    no_exception(at)
    assert at.title[0].value == "Gradient Leakage Lab"
    # Every setting starts at dlg_core.config.DEFAULT, and the first sample's animal is the true label.
    assert at.selectbox(key="cfg_model").value == DEFAULT.model
    assert at.selectbox(key="cfg_attack").value == DEFAULT.attack
    assert at.select_slider(key="cfg_size").value == DEFAULT.size
    assert at.number_input(key="cfg_classes").value == DEFAULT.classes
    assert at.number_input(key="cfg_steps").value == DEFAULT.steps
    assert at.number_input(key="cfg_seed").value == DEFAULT.seed
    assert at.selectbox(key="cfg_distance").value == DEFAULT.distance
    assert at.selectbox(key="cfg_label").value == SAMPLES[0].label
    # The gallery: one pick button per bundled sample, the first one picked; the CC BY credit is shown.
    assert at.button(key=f"pick_{SAMPLES[0].name}").label == "Picked"
    assert all(at.button(key=f"pick_{s.name}") for s in SAMPLES)
    credited = [s for s in SAMPLES if s.needs_credit]
    assert credited and all(any(s.credit in c.value for c in at.caption) for s in credited)
    # The client's view at the chosen resolution, beside the original.
    captions = [c for img in at.image for c in img.captions]
    assert f"What the client trains on: {DEFAULT.size}x{DEFAULT.size} pixels" in captions
    assert at.button(key="stop").disabled


def test_how_it_works_renders_with_live_label_chart(app_test):
    at = app_test().run()
    at.switch_page("app_pages/how_it_works.py").run()
    no_exception(at)
    assert at.title[0].value == "How it works"
    assert len(at.latex) >= 4
    assert len(at.get("plotly_chart")) == 3  # the last layer's row sums and its entries; each layer's count
    text = " ".join(m.value for m in at.markdown)
    assert "exactly the true label" in text
    for reference in ("2301.02621", "1906.08935", "2001.02610", "2003.14053"):
        assert reference in text
    assert "41.1" in " ".join(e.value for e in at.latex)
    # The diagram twice (the page style shows one per screen width), left to right and in one column, with alt text.
    wide, narrow = (chart.proto for chart in at.get("graphviz_chart"))
    assert "rankdir=LR" in wide.spec and "rankdir=TB" in narrow.spec
    assert wide.alt == narrow.alt and "shares only that gradient" in wide.alt


def test_how_it_works_follows_the_chosen_photo_and_label(app_test):
    at = app_test().run()
    at.button(key="pick_dog_pekingese").click().run()
    at.switch_page("app_pages/how_it_works.py").run()
    no_exception(at)
    text = " ".join(m.value for m in at.markdown)
    assert "Pekingese-type dog" in text and "is **dog**, exactly the true label" in text


# --- a run ------------------------------------------------------------------------------------------------


def test_short_attack_shows_reconstruction_charts_and_summary(app_test):
    at = app_test().run()
    quick_settings(at)
    at.button(key="pick_dog_pekingese").click().run()
    assert at.selectbox(key="cfg_label").value == sample("dog_pekingese").label  # the dog's label follows the pick
    at.button(key="run").click().run()
    no_exception(at)

    history = at.session_state["run_history"]
    assert history.status in ("ok", "timeout") and history.config.size == 16 and history.config.steps == 5
    assert 1 <= len(history.rows) <= 6 and history.rows[-1]["step"] <= 5  # (step 0 is the starting point)
    assert history.frames[-1].step == history.rows[-1]["step"]
    assert history.sample == "dog_pekingese" and history.label_true == (1,)

    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("Error map at step") for c in captions)
    assert len(at.get("plotly_chart")) == 3  # MSE, PSNR, gradient distance
    # The stage's player in the browser gets every stored frame, from the attacker's starting image.
    player = stage_player_html(at)
    assert f'id="stage-player-{history.run_id}"' in player and player.count('"seq": ') == len(history.frames)
    assert '"seq": 0, "step": 0' in player
    metrics = {m.label: m.value for m in at.metric}
    for label in ("MSE on 0-255", "MSE on [0, 1]", "PSNR", "SSIM", "Label", "Time", "Evaluations"):
        assert label in metrics
    assert metrics["Label"] in ("correct", "wrong")
    assert f"{history.rows[-1]['psnr']:.1f} dB" == metrics["PSNR"]
    assert any("Status:" in c.value for c in at.caption)
    assert {b.label for b in at.download_button} == {"Animation (GIF)", "Metric history (CSV)", "Config (JSON)"}
    # The shared link names the sample and the non-default settings, and the address bar carries it.
    share = at.code[0].value
    assert "sample=dog_pekingese" in share and "size=16" in share and "steps=5" in share
    assert at.query_params["sample"] == "dog_pekingese"


def stage_player_html(at) -> str:
    bodies = [element.proto.body for element in at.get("html") if 'id="stage-player-' in element.proto.body]
    assert len(bodies) == 1
    return bodies[0]


def test_a_new_run_clears_the_last_result_and_the_stage_plays_the_new_one(app_test):
    at = app_test().run()
    quick_settings(at)
    at.button(key="run").click().run()
    first = at.session_state["run_history"]
    assert any("Leaked" in s.body or "leaked" in s.body for s in [*at.success, *at.warning, *at.info])
    at.number_input(key="cfg_seed").set_value(1).run()
    at.button(key="run").click().run()
    no_exception(at)
    second = at.session_state["run_history"]
    assert second.run_id == first.run_id + 1
    player = stage_player_html(at)  # one stage, the new run's
    assert f'id="stage-player-{second.run_id}"' in player


def test_an_interrupted_run_keeps_what_it_reached(app_test):
    """Stop (or any click) during a run reruns the page: the next script run marks the history stopped."""
    at = app_test().run()
    quick_settings(at)
    at.button(key="run").click().run()
    history = at.session_state["run_history"]
    history.status, history.message, history.result = "running", None, None  # as if cut off mid-run
    at.run()
    no_exception(at)
    assert history.status == "stopped" and history.rows
    assert any("Stopped" in c.value for c in at.caption)
    assert "PSNR" in {m.label for m in at.metric}


def test_a_run_waits_for_a_free_slot_and_gives_it_back(app_test):
    """dlg_core.slots: at most one attack per core per server; a run queues until a slot is free."""
    from ui.run_engine import run_slots

    slots = run_slots()  # the same process-wide instance the app uses (st.cache_resource)
    at = app_test().run()
    quick_settings(at)
    busy = [slots.join() for _ in range(slots.slots)]  # every slot taken by "other visitors"
    threading.Timer(1.0, lambda: [slots.release(t) for t in busy]).start()
    started = time.monotonic()
    at.button(key="run").click().run()
    no_exception(at)
    assert time.monotonic() - started >= 1.0  # it waited its turn
    assert at.session_state["run_history"].status == "ok"
    assert slots.running == 0 and slots.waiting == 0  # and gave its slot back


# --- uploads and the webcam -------------------------------------------------------------------------------


def test_non_image_upload_gives_a_clear_error(app_test):
    at = app_test().run()
    at.segmented_control(key="photo_source").set_value("Upload").run()
    uploader = at.file_uploader(key="upload_widget")
    assert set(uploader.allowed_type) >= {".jpg", ".png"} or set(uploader.allowed_type) >= {"jpg", "png"}
    uploader.set_value(("holiday.png", b"these are my notes, not a photo", "image/png")).run()
    no_exception(at)
    assert any("could not be read as an image" in e.value for e in at.error)
    assert at.button(key="run").disabled  # nothing to attack
    assert "upload_photo" not in at.session_state or at.session_state["upload_photo"] is None


def test_upload_handler_takes_bytes():
    with pytest.raises(BadInputError, match="could not be read as an image"):
        photo_from_bytes(b"%%% not an image %%%")
    with pytest.raises(BadInputError, match="PDF"):
        photo_from_bytes(b"%PDF-1.7 ...")
    photo = photo_from_bytes(jpeg_bytes())
    assert photo.source == "upload" and photo.sample is None and photo.image.size == (64, 48)
    assert photo.tensor(16).shape == (1, 3, 16, 16)
    big = io.BytesIO()
    Image.new("RGB", (3000, 1500), (200, 10, 10)).save(big, "PNG")
    assert max(photo_from_bytes(big.getvalue()).image.size) == 1024  # not 3000 px held in session memory


def test_uploaded_photo_runs_and_never_enters_a_link(app_test):
    at = app_test().run()
    quick_settings(at)
    at.segmented_control(key="photo_source").set_value("Upload").run()
    at.file_uploader(key="upload_widget").set_value(("cat.jpg", jpeg_bytes(), "image/jpeg")).run()
    no_exception(at)
    assert not at.error
    assert any("Your photo (original, 64x48)" in c for img in at.image for c in img.captions)
    at.button(key="run").click().run()
    no_exception(at)
    history = at.session_state["run_history"]
    assert history.sample is None and history.rows
    share = at.code[0].value
    assert "sample=" not in share and "size=16" in share
    assert "sample" not in at.query_params
    assert any("never put in a link" in c.value for c in at.caption)


def test_webcam_snapshot_becomes_the_photo(app_test):
    at = app_test().run()
    at.segmented_control(key="photo_source").set_value("Webcam").run()
    at.camera_input(key="camera_widget").set_value(("snapshot.jpg", jpeg_bytes(), "image/jpeg")).run()
    no_exception(at)
    assert any("Your webcam snapshot" in c for img in at.image for c in img.captions)
    assert not at.button(key="run").disabled


# --- shared links -----------------------------------------------------------------------------------------


def test_shared_link_restores_config_and_replays_the_run(app_test):
    at = app_test()
    for key, value in {"v": "2", "sample": "dog_german_shepherd", "attack": "dlg", "seed": "3", **QUICK}.items():
        at.query_params[key] = value
    at.run()
    no_exception(at)
    assert at.select_slider(key="cfg_size").value == 16
    assert at.number_input(key="cfg_steps").value == 5
    assert at.selectbox(key="cfg_attack").value == "dlg"
    assert at.number_input(key="cfg_seed").value == 3
    assert at.selectbox(key="cfg_model").value == DEFAULT.model  # absent from the link: the default
    assert at.button(key="pick_dog_german_shepherd").label == "Picked"
    assert at.selectbox(key="cfg_label").value == 1
    history = at.session_state["run_history"]  # the link's run replayed by itself
    assert history.config == AttackConfig(attack="dlg", seed=3, size=16, steps=5)
    assert history.sample == "dog_german_shepherd"
    assert any("Opened from a shared link" in i.value for i in at.info)


def test_shared_link_with_a_label_other_than_the_animal(app_test):
    at = app_test()
    at.query_params.update({"sample": "cat_chelsea", "label": "1", **QUICK})
    at.run()
    no_exception(at)
    assert at.selectbox(key="cfg_label").value == 1
    assert at.session_state["run_history"].label_true == (1,)


@pytest.mark.parametrize("params, words", [
    ({"size": "9999"}, "size"),
    ({"attack": "magic"}, "attack"),
    ({"sample": "cat_unknown"}, "cat_unknown"),
    ({"colour": "red"}, "colour"),
    ({"steps": "many"}, "steps"),
    ({"sample": "cat_chelsea", "label": "7"}, "label"),
])
def test_bad_link_shows_an_error_and_falls_back_to_defaults(app_test, params, words):
    at = app_test()
    at.query_params.update(params)
    at.run()
    no_exception(at)
    assert at.error and words in at.error[0].value and "defaults" in at.error[0].value
    assert at.select_slider(key="cfg_size").value == DEFAULT.size
    assert at.selectbox(key="cfg_attack").value == DEFAULT.attack
    assert "run_history" not in at.session_state  # nothing replays from a refused link


def test_settings_only_link_asks_for_a_photo(app_test):
    at = app_test()
    at.query_params.update(QUICK)
    at.run()
    no_exception(at)
    assert at.select_slider(key="cfg_size").value == 16
    assert "run_history" not in at.session_state
    assert any("never shared" in i.value for i in at.info)


def test_link_params_round_trip():
    config = DEFAULT.replace(size=24, steps=40, seed=9, attack="dlg")
    params = link_params(config, "dog_pekingese", 0)  # a dog trained as "cat"
    assert params["sample"] == "dog_pekingese" and params["label"] == "0"
    link = parse_link(params)
    assert link.config == config and link.sample == "dog_pekingese" and link.label == 0
    assert "label" not in link_params(config, "dog_pekingese", 1)  # the animal's own label is implied
    assert "sample" not in link_params(config, None, 0)  # a user's own photo is never named
    assert parse_link({}) is None


def test_links_made_before_the_default_changed_replay_their_own_run():
    # A link leaves out the settings equal to the defaults of its day; those made before links carried a
    # version were made while LeNet and the squared L2 distance were the defaults.
    old = parse_link({"sample": "dog_pekingese", "size": "24"})
    assert old.config == DEFAULT.replace(model="lenet", distance="l2", size=24)
    assert parse_link({"sample": "dog_pekingese", "model": "mlp"}).config.model == "mlp"  # named: kept
    new = parse_link(link_params(DEFAULT.replace(size=24), "dog_pekingese", 1))
    assert new.config == DEFAULT.replace(size=24) and DEFAULT.model != "lenet"
    with pytest.raises(BadInputError, match="version"):
        parse_link({"sample": "dog_pekingese", "v": "9"})


# --- state across pages and the history's bookkeeping -----------------------------------------------------


def test_settings_and_run_survive_a_visit_to_the_other_page(app_test):
    at = app_test().run()
    quick_settings(at)
    at.selectbox(key="cfg_attack").set_value("dlg")
    at.button(key="pick_cat_kitten_yarn").click().run()
    at.button(key="run").click().run()
    at.switch_page("app_pages/how_it_works.py").run()
    at.switch_page("app_pages/attack_lab.py").run()
    no_exception(at)
    assert at.select_slider(key="cfg_size").value == 16
    assert at.selectbox(key="cfg_attack").value == "dlg"
    assert at.button(key="pick_cat_kitten_yarn").label == "Picked"
    assert at.session_state["run_history"].status != "running"
    assert len(at.get("plotly_chart")) == 3


class FakeSnapshot:
    def __init__(self, step: int):
        self.step, self.seconds, self.evals = step, step / 10, step * 3
        self.image = torch.full((1, 3, 4, 4), step / 1000)
        self.label_guess, self.label_probs = (0,), torch.tensor([[0.9, 0.1]])
        self.gradient_distance, self.mse, self.mse_255 = 1 / step, 1 / step, 65025 / step
        self.psnr, self.ssim, self.restarts = 10.0 + step / 10, 0.5, 0
        self.trail = ()


def test_history_keeps_every_metric_and_thins_frames_evenly(monkeypatch):
    history = RunHistory(run_id=1, config=DEFAULT, photo_title="t", sample=None,
                         original=np.zeros((4, 4, 3), np.uint8), label_true=(0,), gradient_numel=10,
                         gradient_norm=1.0, victim_loss=0.1, victim_true_probability=0.5, victim_seed=0,
                         warning=None)
    for step in range(1, 1001):
        history.add(FakeSnapshot(step))
    assert len(history.rows) == 1000  # every snapshot's metrics
    assert len(history.frames) <= history_module.MAX_FRAMES
    gaps = {b.step - a.step for a, b in itertools.pairwise(history.frames)}
    assert len(gaps) == 1  # evenly spaced
    history.stop()
    assert history.status == "stopped" and history.frames[-1].step == 1000  # the replay ends where the run did
    assert history.seconds_to_success == pytest.approx(20.0)  # first PSNR >= 30 dB at step 200
    assert history.frame_index_at(0) == 0 and history.row_at(500)["step"] == 500
