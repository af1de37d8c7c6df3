"""The subcommands: ``pool`` and ``subgroup`` (an effects CSV), ``validate-data`` and ``report``
(the review's studies table); `COMMANDS` maps each name to its function.

The library and the review are imported inside each command, so that ``ketameta --help`` does
not load them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ketameta._cli.errors import CliError
from ketameta._cli.files import _save_plot, _write_pool, _write_subgroup
from ketameta._cli.inputs import _check_outputs, _drop_missing, _load_effects, _read_text
from ketameta._cli.text import _format_meta, _format_subgroup


def _pool(args: argparse.Namespace) -> int:
    from ketameta.synthesis.pooling import meta

    _check_outputs(args)
    data, label = _load_effects(args)
    result = meta(
        data=data, yi=args.yi, vi=args.vi, method=args.method, test=args.test,
        level=args.level, labels=label, measure=args.measure,
    )  # fmt: skip
    print(_format_meta(result, args.csv, label))
    _finish(result, args, _write_pool)
    return 0


def _subgroup(args: argparse.Namespace) -> int:
    from ketameta.synthesis.subgroup import subgroup

    _check_outputs(args)
    data, label = _load_effects(args, {"--by": args.by})
    data = _drop_missing(data, args.by, label, args.csv)
    result = subgroup(
        data, args.by, method=args.method, test=args.test, level=args.level, tau2=args.tau2,
        yi=args.yi, vi=args.vi, labels=label,
    )  # fmt: skip
    print(_format_subgroup(result, args.csv))
    _finish(result, args, _write_subgroup)
    return 0


def _finish(result, args: argparse.Namespace, write: Callable[[Any, argparse.Namespace], None]):
    if args.out:
        write(result, args)
        print(f"\nResults written to {args.out}")
    if args.plot:
        _save_plot(result, args.plot)
        print(f"{'' if args.out else chr(10)}Forest plot written to {args.plot}")


def _validate_data(args: argparse.Namespace) -> int:
    """Print every problem of a studies CSV (exit 1) or ``OK: N records from M studies``.

    The file is read by `ketameta.review.studies.read_studies_file`, the parser of
    `load_studies`, so a file that validates here loads to the same values; a file that cannot
    be read (encoding, delimiter, empty, header only, ragged rows, a directory) is a one-line
    error and exit status 1."""
    from ketameta.review.studies import bundled_path, read_studies_file, validate_studies

    path = str(args.path or bundled_path())
    df = read_studies_file(path)
    problems = validate_studies(df)
    if problems:
        print(f"{path}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"OK: {len(df)} records from {df['study_id'].nunique()} studies ({path})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ketameta.review.report.build import build_report

    for value in (args.data, args.config):
        if value:
            _read_text(value)  # a one-line error for a missing, binary or empty file
    if args.data and Path(args.out).resolve() == Path(args.data).resolve():
        raise CliError(f"--out {args.out}: is the data file")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CliError(f"--out {args.out}: exists and is not a folder")
    out = build_report(
        data=args.data,
        config=args.config,
        out=args.out,
        progress=None if args.quiet else (lambda msg: print(msg, file=sys.stderr)),
    )
    print(f"report written to {out}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "report": _report,
    "validate-data": _validate_data,
    "pool": _pool,
    "subgroup": _subgroup,
}
