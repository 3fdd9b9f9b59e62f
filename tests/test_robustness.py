"""Every case of the bad-input corpus (tests/bad_inputs.py), in the app and on the command line.

The app: each upload goes through the page itself (AppTest drives the real st.file_uploader), and through
``ui.photo.take_photo``, the function that takes the widget's bytes; each bad link through the page. The
command line: ``dlg_core.cli.main``, the function ``python -m dlg_core`` runs, for every case (a process per
case would spend 3-5 s importing torch each time), and real subprocesses for a sample of them.
Also here: the limits the page states, the thread cap, the batch cap, a blow-up ending as "diverged", and
the rule that nothing a user sends reaches pickle, torch.load or eval.
"""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from bad_inputs import ACCEPTED, CONFIG_CASES, IMAGE_CASES, LINK_CASES, REFUSED, good_jpeg
from PIL import Image

from dlg_core import cli, limits
from dlg_core.config import DEFAULT, AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.images import SAMPLES, load_sample
from dlg_core.run import AttackRun
from ui.photo import UPLOAD_TYPES, take_photo

ROOT = Path(__file__).resolve().parent.parent
CHELSEA = ROOT / "assets" / "samples" / "cat_chelsea.jpg"
TINY = ["--size", "16", "--steps", "2", "--quiet"]


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def has_words(text: str, words) -> None:
    for word in words:
        assert word.lower() in text.lower(), (word, text)


def upload_name(filename: str) -> str:
    """The browser's file chooser offers only UPLOAD_TYPES; content, not the name, is what is checked."""
    stem, _, ext = filename.rpartition(".")
    return filename if ext.lower() in UPLOAD_TYPES else f"{stem}.jpg"


def upload(at, name: str, data: bytes):
    return at.file_uploader(key="upload_widget").set_value((name, data, "application/octet-stream")).run()


# ---------------------------------------------------------------------------------------------- uploads, UI


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_upload_bytes_path(case):
    """ui.photo.take_photo: the widget's bytes in, a Photo or the student's message out."""
    data = case.data()
    if case.accepted:
        photo = take_photo(data)
        has_words(" ".join(photo.notes), case.words)
        assert photo.image.mode == "RGB" and photo.image.size == case.shown_size
        assert photo.tensor(16).shape == (1, 3, 16, 16)
    else:
        with pytest.raises(BadInputError) as info:
            take_photo(data)
        message = str(info.value)
        has_words(message, case.words)
        assert "\n" not in message and "Traceback" not in message and "PIL" not in message


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_upload_in_the_page_then_the_page_still_works(app_test, case):
    at = app_test().run()
    at.segmented_control(key="photo_source").set_value("Upload").run()
    upload(at, upload_name(case.filename), case.data())
    no_exception(at)
    captions = [c for img in at.image for c in img.captions]
    if case.accepted:
        assert not at.error
        has_words(" ".join(c.value for c in at.caption), case.words)  # the note, under the photo
        w, h = case.shown_size
        assert f"Your photo (original, {w}x{h})" in captions  # upright, first frame, flattened...
        assert not at.button(key="run").disabled
    else:
        assert len(at.error) == 1
        has_words(at.error[0].value, case.words)
        assert at.button(key="run").disabled  # nothing to attack
        assert at.session_state["upload_photo"] is None
        assert not any(c.startswith("Your photo") for c in captions)
    # Still usable: the next upload is taken and the message goes away.
    upload(at, "cat.jpg", good_jpeg())
    no_exception(at)
    assert not at.error and not at.button(key="run").disabled
    assert "Your photo (original, 64x48)" in [c for img in at.image for c in img.captions]


def test_the_file_chooser_offers_photos_only(app_test):
    """A .txt/.svg/.pdf/.heic file cannot be picked at all (Streamlit's chooser filters by type and says so);
    renamed to .jpg it reaches the decoder, which names what it is (test above)."""
    at = app_test().run()
    at.segmented_control(key="photo_source").set_value("Upload").run()
    allowed = {t.lstrip(".").lower() for t in at.file_uploader(key="upload_widget").allowed_type}
    assert {"jpg", "jpeg", "png", "webp", "gif", "avif"} <= allowed
    assert not allowed & {"txt", "svg", "pdf", "heic", "heif", "html", "py", "pkl", "pt"}
    label = at.file_uploader(key="upload_widget").label
    assert f"up to {limits.MAX_UPLOAD_MB} MB" in label


def test_a_whole_corpus_in_one_session_then_an_attack(app_test):
    """One student tries every bad file in turn, then a real photo: the attack still runs to its end."""
    at = app_test().run()
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="cfg_steps").set_value(3)
    at.segmented_control(key="photo_source").set_value("Upload").run()
    for case in REFUSED:
        upload(at, upload_name(case.filename), case.data())
        no_exception(at)
        has_words(at.error[0].value, case.words)
    upload(at, "portrait.jpg", next(c for c in ACCEPTED if c.name == "exif_rotated").data())
    at.button(key="run").click().run()
    no_exception(at)
    history = at.session_state["run_history"]
    assert history.status in ("ok", "timeout") and history.rows and history.sample is None
    assert not at.error


# ---------------------------------------------------------------------------------------------- uploads, CLI


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["run", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str, words) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    has_words(lines[0], words)


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_cli_image(tmp_path, capsys, case):
    path = tmp_path / case.filename
    path.write_bytes(case.data())
    code, out, err = run_main(capsys, "--image", path, *TINY)
    if case.accepted:
        assert code == 0, err
        assert out.strip().startswith(f"ok: idlg on {DEFAULT.model} at 16px")
    else:
        assert code == 2 and out == ""
        one_error_line(err, case.words)


def test_cli_refuses_a_batch_over_the_limit(tmp_path, capsys):
    code, _, err = run_main(capsys, *[a for _ in range(limits.MAX_BATCH + 1) for a in ("--image", CHELSEA)], *TINY)
    assert code == 2
    one_error_line(err, (f"1 to {limits.MAX_BATCH} photos",))


# ---------------------------------------------------------------------------------------------- configs, CLI


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.name)
def test_cli_config(tmp_path, capsys, case):
    path = tmp_path / f"{case.name}.json"
    path.write_bytes(case.data())
    code, out, err = run_main(capsys, "--image", CHELSEA, "--config", path, *TINY)
    assert code == 2 and out == ""
    one_error_line(err, case.words)
    assert str(path) in err  # which file


@pytest.mark.parametrize("target", ["missing.json", "."])
def test_cli_config_that_is_not_a_file(tmp_path, capsys, target):
    code, _, err = run_main(capsys, "--image", CHELSEA, "--config", tmp_path / target, *TINY)
    assert code == 2
    one_error_line(err, ("Config file not found",))


def test_cli_config_from_the_app_download_and_explicit_options_override_it(tmp_path, capsys):
    from dlg_core.export import config_to_json

    path = tmp_path / "run.json"
    path.write_text(config_to_json(DEFAULT.replace(attack="dlg", size=16, steps=3, seed=7)))
    out_json = tmp_path / "out.json"
    code, out, err = run_main(capsys, "--image", CHELSEA, "--config", path, "--quiet", "--json", out_json)
    assert code == 0, err
    result = json.loads(out_json.read_text())
    assert (result["attack"], result["size"], result["seed"], result["config"]["steps"]) == ("dlg", 16, 7, 3)
    # Given explicitly (abbreviated, or with =, or equal to the default), an option wins over the file.
    code, out, err = run_main(capsys, "--image", CHELSEA, "--config", path, "--quiet", "--json", out_json,
                              "--att", "idlg", "--steps=2", "--seed", "0")
    assert code == 0, err
    result = json.loads(out_json.read_text())
    assert (result["attack"], result["size"], result["seed"], result["config"]["steps"]) == ("idlg", 16, 0, 2)
    code, _, err = run_main(capsys, "--image", CHELSEA, "--config", path, "--textbook", *TINY)
    assert code == 2 and "not both" in err


def test_cli_in_real_processes(tmp_path):
    """`python -m dlg_core run`, as a student types it, for a sample of the corpus (in parallel: each process
    spends seconds importing torch)."""
    cases = {c.name: c for c in IMAGE_CASES}
    jobs = []
    for name in ("zero_bytes", "truncated_jpeg", "decompression_bomb", "heic"):
        path = tmp_path / cases[name].filename
        path.write_bytes(cases[name].data())
        jobs.append((name, ["--image", path], cases[name].words))
    for case in (c for c in CONFIG_CASES if c.name in ("not_json", "steps_1e9", "batch_1000")):
        path = tmp_path / f"{case.name}.json"
        path.write_bytes(case.data())
        jobs.append((case.name, ["--image", CHELSEA, "--config", path], case.words))

    def run(job):
        name, args, words = job
        proc = subprocess.run([sys.executable, "-m", "dlg_core", "run", *map(str, args), *TINY], cwd=ROOT,
                              capture_output=True, text=True, timeout=180)
        return name, proc, words

    with ThreadPoolExecutor(max_workers=3) as pool:
        for name, proc, words in pool.map(run, jobs):
            assert proc.returncode == 2, (name, proc.stderr)
            assert proc.stdout == "", name
            one_error_line(proc.stderr, words)


# ---------------------------------------------------------------------------------------------- links, UI


@pytest.mark.parametrize("case", LINK_CASES, ids=lambda c: c.name)
def test_bad_link(app_test, case):
    at = app_test()
    at.query_params.update(case.text)
    at.run()
    no_exception(at)
    assert len(at.error) == 1
    message = at.error[0].value
    has_words(message.replace("\\", ""), case.words)
    assert "defaults are shown" in message and "\n" not in message
    assert len(message) < 600  # whatever the link carried, the message stays short
    assert at.select_slider(key="cfg_size").value == DEFAULT.size  # fell back to the defaults
    assert at.number_input(key="cfg_steps").value == DEFAULT.steps
    assert "run_history" not in at.session_state  # nothing replays from a refused link
    assert not at.button(key="run").disabled  # and the page is ready for a run of the student's own


def test_a_crafted_link_cannot_draw_links_or_images_into_the_page(app_test):
    at = app_test()
    at.query_params.update({"attack": "[log in](https://evil.example/x)", "model": "![x](http://e.example/p.png)"})
    at.run()
    no_exception(at)
    message = at.error[0].value
    assert "](" not in message.replace("\\]", "") and "\\[" in message
    assert "://" not in message  # a zero-width space breaks any bare URL


def test_after_a_bad_link_the_page_still_runs_an_attack(app_test):
    at = app_test()
    at.query_params.update({"sample": "cat_chelsea", "steps": "1000000000"})
    at.run()
    assert at.error
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="cfg_steps").set_value(3)
    at.button(key="run").click().run()
    no_exception(at)
    assert at.session_state["run_history"].status in ("ok", "timeout")
    assert not at.error  # the link's message served its turn


def test_a_link_asking_for_many_threads_gets_one(app_test):
    at = app_test()
    at.query_params.update({"sample": "cat_chelsea", "size": "16", "steps": "2", "threads": "64"})
    at.run()
    no_exception(at)
    assert not at.error
    assert at.number_input(key="cfg_threads").value == limits.THREADS_PER_RUN
    assert at.session_state["run_history"].config.threads == limits.THREADS_PER_RUN


# ---------------------------------------------------------------------------------------------- blow-ups


BLOW_UP = {"lr": 1000.0, "line_search": "none"}  # L-BFGS's first step leaves the valid box by far


def test_a_huge_learning_rate_ends_diverged_on_the_command_line(tmp_path, capsys):
    out_json = tmp_path / "out.json"
    code, out, err = run_main(capsys, "--image", CHELSEA, "--lr", "1000", "--line-search", "none", "--json",
                              out_json, *TINY)
    assert code == 0, err  # a finished run, whatever its quality
    result = json.loads(out_json.read_text())
    assert result["status"] == "diverged" and result["restarts"] >= 1
    assert "smaller learning rate" in result["message"]
    assert out.startswith("diverged: ")


def test_a_huge_learning_rate_ends_diverged_in_the_page(app_test):
    at = app_test()
    at.query_params.update({"sample": "cat_chelsea", "size": "16", "steps": "20", "lr": "1000",
                            "line_search": "none"})
    at.run()
    no_exception(at)
    history = at.session_state["run_history"]
    assert history.status == "diverged"
    status = next(c.value for c in at.caption if c.value.startswith("Status:"))
    assert "Diverged" in status and "smaller learning rate" in status
    assert not at.error


@pytest.mark.parametrize("model", ["lenet", "cnn", "mlp"])
@pytest.mark.parametrize("attack", ["dlg", "idlg"])
def test_no_setting_crashes_a_run(model, attack):
    """The largest learning rate the config allows, every victim and attack: a status, never an exception."""
    for extra in ({"distance": "cosine", "init": "normal"}, {"precision": "float64", "line_search": "none"}):
        config = DEFAULT.replace(model=model, attack=attack, size=16, steps=3, lr=1000.0, **extra)
        run = AttackRun(config, load_sample("cat_chelsea", 16), (0,))
        for _ in run:
            pass
        assert run.result.status in ("ok", "diverged", "timeout")


# ---------------------------------------------------------------------------------------------- limits


def test_the_page_states_every_limit(app_test):
    at = app_test().run()
    no_exception(at)
    panel = next((" ".join(m.value for m in e.markdown) for e in at.expander if e.label.startswith("Limits")), "")
    for fact in (f"{limits.MAX_UPLOAD_MB} MB", f"{limits.MAX_PIXELS / 1e6:g} megapixels",
                 f"{limits.MIN_SIZE} to {limits.MAX_SIZE} pixels", f"at most {limits.MAX_BATCH} photos per run",
                 f"takes up to {limits.MAX_IMPRINT_BATCH}", f"At most {limits.MAX_CLIENTS} clients",
                 f"{limits.MAX_STEPS:,} per run", f"{limits.MAX_SECONDS:g} seconds", "Runs at once:** "):
        assert fact in panel, fact
    assert at.number_input(key="cfg_steps").max == limits.MAX_STEPS
    assert at.number_input(key="cfg_max_seconds").max == limits.MAX_SECONDS
    assert at.number_input(key="cfg_threads").max == limits.THREADS_PER_RUN


def test_one_run_cannot_raise_the_servers_torch_threads():
    """The app caps torch threads once per process; a run asking for more still gets the cap."""
    import dlg_core.run as run_module

    saved = run_module._thread_cap
    try:
        run_module.cap_threads(1)
        run = AttackRun(DEFAULT.replace(size=16, steps=2, threads=8), load_sample("cat_chelsea", 16), (0,))
        seen = []
        for _ in run:
            seen.append(torch.get_num_threads())
        assert set(seen) == {1}
        new_thread = []
        t = threading.Thread(target=lambda: new_thread.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert new_thread == [1]  # the next script thread starts from the cap too
    finally:
        run_module._thread_cap = saved


def test_run_slots_default_to_the_limit():
    from dlg_core.slots import RunSlots

    assert RunSlots().slots == limits.RUN_SLOTS >= 1


# ---------------------------------------------------------------------------------------------- safe loading

CODE_DIRS = ("dlg_core", "ui", "pages")
# Calls that can run code hidden in data. None of them may appear anywhere in the app or the science core.
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "pickle.load", "pickle.loads", "torch.load",
                   "marshal.loads", "shelve.open", "yaml.load", "yaml.unsafe_load", "dill.load", "joblib.load",
                   "np.load", "numpy.load", "torch.jit.load", "os.system", "subprocess.run", "subprocess.Popen"}
FORBIDDEN_MODULES = {"pickle", "dill", "shelve", "marshal", "joblib", "cloudpickle"}


def _sources():
    yield ROOT / "app.py"
    for folder in CODE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def test_nothing_a_user_sends_reaches_an_unsafe_loader():
    calls, imports, image_opens = [], [], []
    for path in _sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name in FORBIDDEN_CALLS:
                    calls.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
                if name.endswith("Image.open"):
                    image_opens.append((path.relative_to(ROOT).as_posix(), {k.arg for k in node.keywords}))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                imports += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                            if n and n.split(".")[0] in FORBIDDEN_MODULES]
    assert not calls, calls
    assert not imports, imports
    # Pictures are opened in one place only, and only with the photo decoders named (no EPS, no plugins).
    assert image_opens == [("dlg_core/images.py", {"formats"})]


def test_the_loaders_are_json_and_pillow_with_named_formats(monkeypatch):
    """What the loaders really call: configs through json.loads into the dataclass; pictures through
    Image.open with an explicit list of photo formats; a config's values only as checked plain types."""
    from dlg_core import config as config_module
    from dlg_core import images as images_module

    seen = {}
    real_open = Image.open

    def spy_open(fp, mode="r", formats=None):
        seen["formats"] = formats
        return real_open(fp, mode, formats)

    monkeypatch.setattr(images_module.Image, "open", spy_open)
    images_module.decode_image(good_jpeg())
    assert seen["formats"] and set(seen["formats"]) <= {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF"}

    loads = []
    monkeypatch.setattr(config_module.json, "loads", lambda text: loads.append(text) or json.JSONDecoder().decode(
        text if isinstance(text, str) else text.decode()))
    config = AttackConfig.from_json(b'{"size": 16}')
    assert loads and config.size == 16
    # A JSON object where a number belongs is refused, not handed to a constructor.
    with pytest.raises(BadInputError, match="whole number"):
        AttackConfig.from_json('{"size": {"__class__": "os.system"}}')
    with pytest.raises(BadInputError):
        AttackConfig.from_query_params({"size": "__import__('os').system('id')"})


def test_the_app_caches_only_bundled_samples():
    """Streamlit's caches are shared by every session: a cached function must never take a user's photo.
    Each cached function is listed here with what it takes, and none takes a Photo, an image or bytes."""
    cached = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any("cache_" in ast.unparse(d) for d in node.decorator_list):
                cached[f"{path.relative_to(ROOT).as_posix()}:{node.name}"] = [a.arg for a in node.args.args]
    assert cached == {
        "ui/run_engine.py:warm_up": [],
        "ui/run_engine.py:run_slots": [],
        "ui/host.py:set_up_process": [],
        "ui/privacy.py:session_janitor": [],
        "ui/photo.py:sample_image": ["name"],  # a bundled sample's name, checked against the catalogue
        "ui/photo.py:sample_tensor": ["name", "size"],
        "ui/photo.py:sample_thumbnail": ["name", "px"],
        "ui/defences_view.py:dp_epsilon": ["noise_multiplier"],  # a number from the settings, no photo
        "ui/batch.py:_crops": ["count", "size"],  # crops of scikit-image's pictures, numbers only
        "ui/attack_view.py:_check": ["config"],  # the setting's counts before a run: no photo
        "ui/rank_view.py:_sample_stages": ["sample", "config_json", "label"],  # a bundled sample's name; uploads
    }
    assert {s.name for s in SAMPLES} and all(re.fullmatch(r"[a-z_]+", s.name) for s in SAMPLES)


def test_a_decoded_photo_carries_no_metadata():
    """EXIF (GPS, serial numbers), text chunks and colour profiles do not survive decoding."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "secret-comment")
    exif = Image.Exif()
    exif[0x8827] = 400  # any tag
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (9, 9, 9)).save(buf, "PNG", pnginfo=info, exif=exif)
    photo = take_photo(buf.getvalue())
    assert photo.image.info == {} and not photo.image.getexif()
