"""``python -m dlg_core experiment``: a grid of attack runs, one CSV row each, and a summary table to put beside
the papers'.

A grid crosses photos, attacks, victims, sizes, classes, seeds, defence lists, batch sizes and FedAvg local
steps. Each cell is a ``Job``; ``run_job`` runs it with ``run.AttackRun`` and returns a flat row (the run
JSON's scalar fields, lists as JSON text, plus what the defence cost the learning), never raising for a
run that fails: a crash is a row with status "error". Rows are appended to the CSV as they finish and
carry a ``key``, so a re-run with the same file skips what is done (resume, no duplicates).

Named presets reproduce the papers' tables (see each one's description): ``seed-paper`` (Mu 2023),
``idlg-labels`` (Zhao et al. 2020), ``dlg-defenses`` (Zhu et al. 2019, section 5), ``beyond`` (the other
attacks and victims of this project).

One job per module: ``photos`` (finding and decoding the photos), ``grid`` (``Job``, ``Grid``), ``runner``
(``run_job``, ``run_grid``), ``store`` (the CSV: columns, reading back, appending), ``summary`` (statistics and
the text table), ``presets`` (the papers' grids), ``cli`` (the command). This module names what the others use.
"""

from .cli import add_parser, command_experiment, grid_from_args
from .grid import ATTACKERS, Grid, Job
from .photos import SAMPLE_NAMES, GridPhoto, load_photo, resolve_images
from .presets import DLG_DEFENCES, NEW_DEFENCES, PRESETS, Preset
from .runner import jobs_to_run, record_row, run_grid, run_job
from .store import COLUMNS, JOB_COLUMNS, NOT_RUN, RESULT_COLUMNS, append_row, read_rows, rows_to_csv
from .summary import format_summary, summarise

__all__ = [
    "ATTACKERS", "COLUMNS", "DLG_DEFENCES", "JOB_COLUMNS", "NEW_DEFENCES", "NOT_RUN", "PRESETS", "RESULT_COLUMNS",
    "SAMPLE_NAMES", "Grid", "GridPhoto", "Job", "Preset", "add_parser", "append_row", "command_experiment",
    "format_summary", "grid_from_args", "jobs_to_run", "load_photo", "read_rows", "record_row", "resolve_images",
    "rows_to_csv", "run_grid", "run_job", "summarise",
]
