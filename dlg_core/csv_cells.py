"""CSV cells: the one convention of every CSV the project writes (experiment rows, metric histories).

A cell holds a number, text or "" for none; a list or a dict is JSON text (``[0, 1, 1]``), as in the run's JSON
(the experiment CSVs always held JSON, so old ones resume as they are; metric histories wrote "0 1 1" before),
and an infinite number is ``inf``. Reading back, ``number`` turns a cell into a float.
"""

from __future__ import annotations

import json
import math
from typing import Any


def cell(value: Any) -> Any:
    """A value as a CSV cell: lists, tuples and dicts as JSON text, non-finite floats by name (None stays None:
    the csv module writes it as an empty cell)."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def number(value: Any) -> float | None:
    """A cell as a number (CSV cells are text, booleans True/False), None when empty or not finite."""
    if isinstance(value, bool) or value in ("True", "False"):
        return float(value in (True, "True"))
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None

