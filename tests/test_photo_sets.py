"""The photo sets kept apart for tuning and for reporting (dlg_core/photo_sets.py)."""

import numpy as np
import pytest

from dlg_core import photo_sets
from dlg_core.cli import main
from dlg_core.errors import BadInputError


def test_the_report_set_holds_twelve_or_more_photos_none_from_assets_and_none_a_cat_or_dog():
    names = [e.name for e in photo_sets.REPORT]
    assert len(names) >= 12 and len(set(names)) == len(names)
    assert not set(names) & {e.name for e in photo_sets.TUNE}
    assert all(not e.source.startswith("assets/") and e.source != "chelsea" for e in photo_sets.REPORT)
    assert all(e.licence for e in photo_sets.REPORT)


def test_sets_decode_to_distinct_square_rgb_photos():
    images = photo_sets.photos("report", side=32)
    arrays = [np.asarray(im) for im in images.values()]
    assert all(a.shape == (32, 32, 3) for a in arrays)
    assert len({a.tobytes() for a in arrays}) == len(arrays)


def test_distinct_crops_are_distinct():
    crops = photo_sets.distinct_crops(20, 16, seed=1)
    assert crops.shape == (20, 16, 16, 3)
    assert len({c.tobytes() for c in crops}) == 20


def test_the_cli_writes_a_set_with_its_sources(tmp_path, capsys):
    assert main(["photos", "--set", "tune", "--out", str(tmp_path), "--side", "24"]) == 0
    assert len(list(tmp_path.glob("*.png"))) == len(photo_sets.TUNE)
    assert "licence" in (tmp_path / "SOURCES.md").read_text()


def test_an_unknown_set_is_refused():
    with pytest.raises(BadInputError):
        photo_sets.photos("mine")
