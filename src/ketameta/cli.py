"""The ``ketameta`` command: ``report``, ``validate-data``, ``pool`` and ``subgroup``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import pandas as pd

from ketameta.exceptions import DataValidationError, KetametaError


def _validate_data(args: argparse.Namespace) -> int:
    """Print every problem of a studies CSV (exit 1) or ``OK: N records from M studies``."""
    from ketameta.review.studies import bundled_path, validate_studies

    path = args.path or bundled_path()
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        print(f"error: {path}: no such file", file=sys.stderr)
        return 1
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        print(f"error: {path}: not a readable CSV file ({exc})", file=sys.stderr)
        return 1
    problems = validate_studies(df)
    if problems:
        print(f"{path}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"OK: {len(df)} records from {df['study_id'].nunique()} studies ({path})")
    return 0


def _read_effects(args: argparse.Namespace) -> pd.DataFrame:
    data = pd.read_csv(args.csv)
    for column in (args.yi, args.vi):
        if column not in data.columns:
            raise KetametaError(
                f"{args.csv}: column {column!r} not found (columns: {', '.join(data.columns)})"
            )
    return data


def _pool(args: argparse.Namespace) -> int:
    from ketameta.synthesis.pooling import meta

    data = _read_effects(args)
    result = meta(data=data, yi=args.yi, vi=args.vi, method=args.method, test=args.test)
    with pd.option_context("display.width", 160, "display.max_columns", 40):
        print(result.summary().T.to_string(header=False))
    return 0


def _subgroup(args: argparse.Namespace) -> int:
    from ketameta.synthesis.subgroup import subgroup

    data = _read_effects(args)
    result = subgroup(data, args.by, method=args.method, test=args.test, yi=args.yi, vi=args.vi)
    with pd.option_context("display.width", 160, "display.max_columns", 40):
        print(result.summary().to_string(index=False))
        print()
        print(result.tests().to_string(index=False))
    return 0


def _report(args: argparse.Namespace) -> int:
    from ketameta.review.report.build import build_report

    out = build_report(
        data=args.data,
        config=args.config,
        out=args.out,
        progress=lambda msg: print(msg, file=sys.stderr),
    )
    print(f"report written to {out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ketameta", description="Meta-analysis of the ketamine evidence, exact to metafor."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="build the HTML report from the data")
    report.add_argument("--data", help="studies CSV (default: the bundled data/studies.csv)")
    report.add_argument("--config", help="ketameta.toml with the analysis settings")
    report.add_argument("--out", default="build/report", help="output folder")
    validate = commands.add_parser("validate-data", help="check a studies CSV against the schema")
    validate.add_argument("path", nargs="?", help="studies CSV (default: the bundled one)")
    for name, helptext in (
        ("pool", "pool the effects of a CSV (yi, vi columns)"),
        ("subgroup", "pool a CSV by subgroup and test the difference"),
    ):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("csv")
        sub.add_argument("--yi", default="yi")
        sub.add_argument("--vi", default="vi")
        sub.add_argument("--method", default="REML")
        sub.add_argument("--test", default="z", choices=("z", "knha"))
        if name == "subgroup":
            sub.add_argument("--by", required=True, help="the moderator column")
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "report": _report,
    "validate-data": _validate_data,
    "pool": _pool,
    "subgroup": _subgroup,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ketameta`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DataValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KetametaError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
