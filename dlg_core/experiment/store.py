"""The results CSV: its columns, reading the complete rows back (resume) and appending one row at a time.

Cells follow ``csv_cells``: lists and dicts as JSON text. Each row carries a ``key`` (last, ending with a hash),
so a row cut short by a crash mid-write never looks complete and a re-run skips what is done.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import BadInputError

# Who did not run: an impossible combination (e.g. the closed-form attack on a convolutional victim) and a crash.
NOT_RUN = ("skipped", "error")
_KEY_END = re.compile(r"#[0-9a-f]{12}$")  # a key ends with its hash: a row cut short has no valid key

JOB_COLUMNS = ("image", "attack", "model", "size", "classes", "seed", "defenses", "batch", "fedavg_steps", "clients",
               "attacker")
RESULT_COLUMNS = (
    "status", "steps_run", "evals", "seconds", "seconds_to_30db", "evals_to_30db", "label_true", "label_guess",
    "label_correct", "label_accuracy", "final_mse", "final_mse_255", "final_psnr", "final_ssim", "message", "diagnosis",
    "warning",
    "victim_seed", "gradient_norm", "restarts", "update_cosine", "update_relative_error", "loss_before",
    "loss_after_true", "loss_after_defended", "per_image", "config",
    # What the defence costs a small federated model (dlg_core/utility.py): test accuracy after the rounds.
    "utility_accuracy", "utility_accuracy_undefended", "utility_rounds", "utility_clients",
)
COLUMNS = (*JOB_COLUMNS, *RESULT_COLUMNS, "key")  # the key last: a row cut short mid-write never looks complete


def _complete(row: dict[str, Any]) -> bool:
    return None not in row and None not in row.values() and bool(_KEY_END.search(row.get("key") or ""))


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The complete rows of a results CSV (a row cut short by a crash mid-write is left out); [] if none."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return [row for row in csv.DictReader(file) if _complete(row)]


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row (writing the header first for a new file), in one write, flushed."""
    path = Path(path)
    header = COLUMNS
    prefix = ""
    if path.exists() and path.stat().st_size:
        with path.open(newline="") as file:
            header = tuple(next(csv.reader(file), COLUMNS))
        if not _ends_with_newline(path):
            prefix = "\n"  # a line cut short by a crash: start afresh on the next line
        if "key" not in header:
            raise BadInputError(f"{path} is not a results file of this tool (it has no 'key' column).")
    text = rows_to_csv([row], header, with_header=header is COLUMNS, line_end="\r\n")  # the csv module's own
    with path.open("a", newline="") as file:
        file.write(prefix + text)
        file.flush()


def rows_to_csv(rows: Iterable[dict[str, Any]], header: tuple[str, ...] = COLUMNS, with_header: bool = True,
                line_end: str = "\n") -> str:
    """Rows as CSV text in ``header``'s columns and order (the app's download is the command line's file)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore", lineterminator=line_end)
    if with_header:
        writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if row.get(name) is None else row[name] for name in header})
    return buffer.getvalue()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(-1, 2)
        return file.read(1) in (b"\n", b"\r")
