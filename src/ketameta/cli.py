"""The ``ketameta`` command: ``pool``, ``subgroup``, ``validate-data`` and ``report``.

Every error a person can cause with their input (a missing, unreadable or malformed file, a
cell that is not a number, an unknown column) is printed as one line, ``ketameta: error: ...``,
naming the file, row and column, and the command exits with status 1; warnings are printed
once each, one line, ``ketameta: warning: ...``. Heavy modules (the report, the plots) are
imported inside the subcommands so that ``ketameta --help`` does not load them.

This module is the entry point (``ketameta = ketameta.cli:main``; ``python -m
ketameta.cli``) and re-exports the names of the parts in `ketameta._cli`: the parser
(`ketameta._cli.parser`), the subcommands (`ketameta._cli.commands`), reading the input
(`ketameta._cli.inputs`), the text and files written (`ketameta._cli.text`,
`ketameta._cli.files`) and the error messages (`ketameta._cli.errors`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from ketameta._cli.commands import COMMANDS
from ketameta._cli.errors import CliError, _error_message, _print_warnings
from ketameta._cli.inputs import (
    LABEL_COLUMNS,
    OUT_FORMATS,
    PLOT_FORMATS,
    PREPARE_HINT,
    STUDIES_TABLE_COLUMNS,
)
from ketameta._cli.parser import METHODS, POOL_EPILOG, SUBGROUP_EPILOG, _parser
from ketameta._cli.text import RATIO_MEASURES
from ketameta.exceptions import DataValidationError, KetametaError

__all__ = [
    "COMMANDS",
    "LABEL_COLUMNS",
    "METHODS",
    "OUT_FORMATS",
    "PLOT_FORMATS",
    "POOL_EPILOG",
    "PREPARE_HINT",
    "RATIO_MEASURES",
    "STUDIES_TABLE_COLUMNS",
    "SUBGROUP_EPILOG",
    "CliError",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ketameta`` command; returns the exit status (0 ok, 1 error,
    2 bad usage)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    import pandas as pd

    handled = (
        KetametaError, DataValidationError, ValueError, OSError, UnicodeDecodeError,
        pd.errors.ParserError, pd.errors.EmptyDataError,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return COMMANDS[args.command](args)
        except handled as exc:
            print(f"ketameta: error: {_error_message(exc)}", file=sys.stderr)
            return 1
        finally:
            _print_warnings(caught)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
