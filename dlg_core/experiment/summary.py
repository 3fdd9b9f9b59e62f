"""A grid's rows summarised by group (success rate, MSE, PSNR, SSIM, labels, time, the federated model's
accuracy) and printed as a plain-text table beside the papers'."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .. import metrics
from ..csv_cells import number
from .store import NOT_RUN


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _psnr(row: dict[str, Any]) -> float | None:
    """The run's PSNR; a batch with an exact copy in it has none in its JSON (the mean over its pairs is
    infinite): its whole batch's MSE says how good it is then."""
    psnr = number(row.get("final_psnr"))
    mse = number(row.get("final_mse"))
    return psnr if psnr is not None or mse is None else min(metrics.psnr_from_mse(mse), metrics.PSNR_CAP)


def summarise(rows: Sequence[dict[str, Any]], by: Sequence[str]) -> list[dict[str, Any]]:
    """One line per group of ``by`` values (in first-seen order): success rate (PSNR >= 30 dB), MSE on 0-255 and
    [0,1] (median and mean), median PSNR and SSIM, label accuracy, median seconds, and the federated model's
    accuracy with the group's defence (``utility.py``). Crashed and skipped runs are
    counted but left out of every statistic; a run that stopped without an image counts as a failure."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(name, "")) for name in by), []).append(row)
    lines = []
    for values, group in groups.items():
        ran = [r for r in group if r.get("status") not in NOT_RUN]

        def column(name: str, rows_: list[dict[str, Any]] = ran) -> list[float]:
            return [x for x in (number(r.get(name)) for r in rows_) if x is not None]

        psnrs = [_psnr(r) for r in ran if _psnr(r) is not None]
        lines.append(dict(zip(by, values, strict=True)) | {
            "runs": len(group),
            "errors": sum(r.get("status") == "error" for r in group),
            "skipped": sum(r.get("status") == "skipped" for r in group),
            "success_rate": (sum(p >= metrics.SUCCESS_PSNR for p in psnrs) / len(ran)) if ran else None,
            "median_mse_255": _median(column("final_mse_255")),
            "mean_mse_255": _mean(column("final_mse_255")),
            "median_mse": _median(column("final_mse")),
            "mean_mse": _mean(column("final_mse")),
            "median_psnr": _median(psnrs),
            "median_ssim": _median(column("final_ssim")),
            "label_accuracy": _mean(column("label_accuracy")),
            "median_seconds": _median(column("seconds")),
            "utility_accuracy": _median(column("utility_accuracy")),
        })
    return lines


_SHOWN = (("runs", "runs", "d"), ("errors", "err", "d"), ("success_rate", "≥30dB", ".0%"),
          ("median_mse_255", "medMSE255", ".2f"), ("mean_mse_255", "meanMSE255", ".2f"),
          ("median_mse", "medMSE", ".5f"), ("mean_mse", "meanMSE", ".5f"), ("median_psnr", "medPSNR", ".1f"),
          ("median_ssim", "medSSIM", ".3f"), ("label_accuracy", "labels", ".0%"), ("median_seconds", "med s", ".1f"),
          ("utility_accuracy", "FL acc", ".0%"))


def format_summary(lines: Sequence[dict[str, Any]], by: Sequence[str]) -> str:
    """The summary as a plain-text table."""
    headers = [*by, *(title for _, title, _ in _SHOWN)]
    table = [[str(line[name]) for name in by]
             + ["-" if line[name] is None else format(line[name], spec) for name, _, spec in _SHOWN]
             for line in lines]
    widths = [max([len(h)] + [len(r[i]) for r in table]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:  # the grouping columns left-aligned, the figures right-aligned
        return " ".join(c.ljust(widths[i]) if i < len(by) else c.rjust(widths[i]) for i, c in enumerate(cells))

    return "\n".join(line(cells) for cells in [headers, *table])
