"""dlg_core.verdict: graded words for a result, advice that differs from the setting, the setting check."""

from __future__ import annotations

import math

from dlg_core import verdict
from dlg_core.config import DEFAULT


def test_grades_follow_ssim_first_then_the_30_db_line():
    assert verdict.grade(27.0, 0.97).grade == "same"  # a 27 dB picture that looks the same is leaked
    assert verdict.grade(27.0, 0.97).headline == "Leaked: looks the same (SSIM 0.97, 27.0 dB)"
    assert verdict.grade(31.0, 0.6).grade == "same"  # the app's 30 dB line still counts
    assert verdict.grade(math.inf, 1.0).headline == "Leaked: looks the same (SSIM 1.00, exact)"
    assert verdict.grade(18.0, 0.6).grade == "recognisable" and verdict.grade(18.0, 0.6).leaked
    assert verdict.grade(14.0, 0.3).grade == "partly" and not verdict.grade(14.0, 0.3).leaked
    assert verdict.grade(9.0, 0.05).grade == "not_leaked"
    assert verdict.grade(9.0, math.nan).grade == "not_leaked"


def test_advice_only_names_changes_that_differ_from_the_setting():
    assert verdict.advice(DEFAULT, "same", "ok") == []
    # The default already uses every measured help: nothing to advise but more time.
    assert verdict.advice(DEFAULT, "not_leaked", "ok") == []
    assert verdict.advice(DEFAULT, "partly", "timeout")[0].startswith("more time")
    lenet = DEFAULT.replace(model="lenet", distance="l2")
    tips = verdict.advice(lenet, "not_leaked", "ok")
    assert any("wide CNN" in t for t in tips) and any("cosine" in t for t in tips)
    assert not any("iDLG" in t for t in tips)  # iDLG is in use already


def test_setting_check_counts_and_warns_of_settings_known_to_fail():
    check = verdict.check_setting(DEFAULT)
    assert check.unknowns == 3 * 32 * 32 and check.equations > check.unknowns and check.warning is None
    lenet64 = verdict.check_setting(DEFAULT.replace(model="lenet", size=64))
    assert lenet64.warning and "LeNet" in lenet64.warning
    assert verdict.check_setting(DEFAULT.replace(model="lenet", size=32)).warning is None
