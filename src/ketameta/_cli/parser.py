"""The argument parser of the ``ketameta`` command: its subcommands, options and help texts."""

from __future__ import annotations

import argparse

METHODS = (
    "REML", "ML", "DL", "PM", "EB", "HE", "HS", "HSk", "SJ", "PMM", "DLIT", "SJIT", "MP", "EE",
    "FE",
)  # fmt: skip


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 95)") from None
    if not 0.0 < value < 100.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a percentage between 0 and 100")
    return value


def _measure(text: str) -> str:
    return text.strip().upper()


POOL_EPILOG = """\
input: a comma-separated UTF-8 file, one row per study, with the effect size (yi) and its
sampling variance (vi), e.g. written by ketameta.escalc(). Study names come from --labels,
else from a column named study, label or study_label, else "Study 1", "Study 2", ...
Rows in error messages are counted from the first row after the header.

examples:
  ketameta pool effects.csv
  ketameta pool effects.csv --method DL --test knha --measure SMD --out result.json
  ketameta pool effects.csv --labels author --plot forest.png
"""

SUBGROUP_EPILOG = """\
input: as for 'ketameta pool', plus the moderator column named by --by.

examples:
  ketameta subgroup effects.csv --by route
  ketameta subgroup effects.csv --by route --tau2 common --out route.md --plot route.png
"""


def _add_effects_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "csv", metavar="FILE.csv", help="effects CSV: one row per study with yi and vi columns"
    )
    sub.add_argument(
        "--yi", default="yi", metavar="COLUMN", help="column of effect sizes (default: yi)"
    )
    sub.add_argument(
        "--vi", default="vi", metavar="COLUMN",
        help="column of sampling variances, > 0 (default: vi)",
    )  # fmt: skip
    sub.add_argument(
        "--labels", metavar="COLUMN",
        help="column of study names (default: the first of study, label, study_label; "
        "else 'Study 1', 'Study 2', ...)",
    )  # fmt: skip
    sub.add_argument(
        "--measure", type=_measure, metavar="NAME",
        help="effect-size measure, e.g. SMD, MD, RR, OR (ratio measures are shown "
        "back-transformed; default: none)",
    )  # fmt: skip
    sub.add_argument(
        "--method", default="REML", choices=METHODS, metavar="METHOD",
        help=f"tau^2 estimator, one of {', '.join(METHODS)}; EE/FE: common-effect model "
        "(default: REML)",
    )  # fmt: skip
    sub.add_argument(
        "--test", default="z", choices=("z", "t", "knha", "adhoc"),
        help="z: Wald z test; t: t(k-1) quantiles; knha: Hartung-Knapp; adhoc: Hartung-Knapp "
        "never below the z standard error (default: z)",
    )  # fmt: skip
    sub.add_argument(
        "--level", default=95.0, type=_percent, metavar="PERCENT",
        help="confidence level in percent (default: 95)",
    )  # fmt: skip
    sub.add_argument(
        "--out", metavar="FILE",
        help="also write the results: .csv, .md (Markdown) or .json, by extension "
        "(default: none)",
    )  # fmt: skip
    sub.add_argument(
        "--plot", metavar="FILE.png",
        help="also draw a forest plot to FILE.png (.pdf, .svg also work; default: none)",
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    from ketameta import __version__

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="ketameta",
        description="Meta-analysis of the ketamine evidence, exact to R's metafor.",
        epilog="Run 'ketameta COMMAND --help' for the options of a command.",
        formatter_class=formatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"ketameta {__version__}",
        help="print the version and exit",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pool = commands.add_parser(
        "pool", help="pool the effect sizes of a CSV (yi, vi columns)",
        description="Pool the effect sizes of a CSV (one row per study) in a common- or\n"
        "random-effects model and print the result as metafor does.",
        epilog=POOL_EPILOG, formatter_class=formatter,
    )  # fmt: skip
    _add_effects_options(pool)
    sub = commands.add_parser(
        "subgroup", help="pool a CSV by subgroup and test the difference",
        description="Pool each level of a moderator column and test whether they differ\n"
        "(the Wald test on the subgroup estimates and the mixed-effects QM test).",
        epilog=SUBGROUP_EPILOG, formatter_class=formatter,
    )  # fmt: skip
    _add_effects_options(sub)
    sub.add_argument(
        "--by", required=True, metavar="COLUMN", help="the moderator column (required)"
    )
    sub.add_argument(
        "--tau2", default="separate", choices=("separate", "common"),
        help="separate: a tau^2 per subgroup; common: one tau^2 for all (default: separate)",
    )  # fmt: skip
    validate = commands.add_parser(
        "validate-data", help="check a studies CSV against the schema",
        description="Check a studies table (the schema of data/studies.csv) and list every\n"
        "problem with its row, column and value; exit 1 if there is any.",
    )  # fmt: skip
    validate.add_argument(
        "path", nargs="?", metavar="PATH",
        help="studies CSV (default: the bundled data/studies.csv)",
    )  # fmt: skip
    report = commands.add_parser(
        "report", help="build the HTML report of the review from the data",
        description="Build DIR/index.html and DIR/tables/*.csv: every question of the review.",
    )  # fmt: skip
    report.add_argument(
        "--data", metavar="FILE.csv",
        help="studies CSV (default: the bundled data/studies.csv)",
    )  # fmt: skip
    report.add_argument(
        "--config", metavar="FILE.toml",
        help="ketameta.toml with the analysis settings (default: the built-in settings)",
    )  # fmt: skip
    report.add_argument(
        "--out", default="build/report", metavar="DIR",
        help="output folder (default: build/report)",
    )  # fmt: skip
    report.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress messages, only the result and errors (default: off)",
    )  # fmt: skip
    return parser
