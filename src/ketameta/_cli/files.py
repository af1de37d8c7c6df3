"""The files written by ``pool`` and ``subgroup``: ``--out`` (CSV, Markdown, JSON), ``--plot``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ketameta._cli.errors import CliError
from ketameta._cli.inputs import OUT_FORMATS
from ketameta._cli.text import RATIO_MEASURES


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame) -> list[dict[str, Any]]:
    return [_jsonable(row) for row in frame.to_dict(orient="records")]


def _model_row(result):
    """``result.summary()`` as a plain one-row table with the measure as a column."""
    table = result.summary().reset_index(drop=True)
    table.insert(0, "measure", result.measure or "")
    table["level"] = result.level
    return table


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{path}: cannot be written ({exc.strerror or exc})") from None


def _write_pool(result, args: argparse.Namespace) -> None:
    import json

    from ketameta.tables import to_markdown

    fmt = OUT_FORMATS[Path(args.out).suffix.lower()]
    model = _model_row(result)
    if fmt == "CSV":
        _write(args.out, model.to_csv(index=False))
    elif fmt == "JSON":
        doc = {
            "command": "pool",
            "input": args.csv,
            "model": _records(model)[0],
            "studies": _records(result.studies()),
        }
        _write(args.out, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    else:
        title = f"Meta-analysis of {args.csv}"
        parts = [f"# {title}", "", to_markdown(model, digits=4), ""]
        if (result.measure or "").upper() in RATIO_MEASURES:
            parts += ["Back-transformed (exp):", "", to_markdown(result, digits=4), ""]
        parts += ["## Studies", ""]
        parts += [to_markdown(result.studies(), digits=4), ""]
        _write(args.out, "\n".join(parts))


def _subgroup_tables(result):
    import pandas as pd

    summary = result.summary()
    tests = result.tests()
    studies = pd.concat(
        [r.studies().assign(subgroup=name) for name, r in result.results.items()],
        ignore_index=True,
    )
    return summary, tests, studies


def _write_subgroup(result, args: argparse.Namespace) -> None:
    import json

    import pandas as pd

    from ketameta.tables import to_markdown

    fmt = OUT_FORMATS[Path(args.out).suffix.lower()]
    summary, tests, studies = _subgroup_tables(result)
    if fmt == "CSV":
        test_rows = tests.rename(columns={"test": "subgroup"}).assign(
            subgroup=lambda t: "test: " + t["subgroup"], df=tests["df"].astype(str)
        )
        table = pd.concat([summary, test_rows], ignore_index=True)
        table["k"] = table["k"].astype("Int64")
        _write(args.out, table.to_csv(index=False))
    elif fmt == "JSON":
        doc = {
            "command": "subgroup",
            "input": args.csv,
            "by": result.by,
            "method": result.method,
            "test": result.test,
            "level": result.level,
            "subgroups": _records(summary),
            "tests": _records(tests.assign(df=tests["df"].map(_jsonable))),
            "studies": _records(studies),
        }
        _write(args.out, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    else:
        parts = [f"# Subgroup analysis of {args.csv} by {result.by!r}", ""]
        parts += [to_markdown(result, digits=4), "", "## Tests for subgroup differences", ""]
        parts += [to_markdown(tests.assign(df=tests["df"].astype(str)), digits=4), ""]
        _write(args.out, "\n".join(parts))


def _save_plot(result, path: str) -> None:
    fig = result.plot_forest()
    try:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    except OSError as exc:
        raise CliError(f"{path}: cannot be written ({exc.strerror or exc})") from None
