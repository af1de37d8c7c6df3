"""Build the self-contained HTML report from the studies table and a configuration.

The report reads results and figures; it recomputes nothing itself. Output is deterministic:
no timestamps, figures saved with fixed metadata, tables in a fixed order, so building twice
from the same data and configuration gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ketameta.exceptions import DataValidationError
from ketameta.review.config import ReportConfig, load_config
from ketameta.review.studies import bundled_path, load_screening, load_studies

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def sha256(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path else "(defaults)"


def guard_csv(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``)
    with a single quote. Numbers (negative ones included) are left as numbers."""
    out = df.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = [
                ("'" + v) if isinstance(v, str) and v.lstrip().startswith(FORMULA_START) else v
                for v in out[column]
            ]
    return out


def versions() -> str:
    names = ("ketameta", "numpy", "scipy", "pandas", "statsmodels", "matplotlib")
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts) + f"; Python {platform.python_version()}"


def build_report(
    *,
    data: str | Path | None = None,
    config: str | Path | None = None,
    out: str | Path = "build/report",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build ``out/index.html`` and ``out/tables/*.csv``; return the path of the HTML file.

    The report opens with the summary of findings and the key findings, then the methods, the
    results (flow, included studies, risk of bias, one section per question with its verdict in
    words, response and remission, sensitivity), the published meta-analyses, the limitations
    and an appendix (warnings grouped, reproducibility). It writes only inside ``out``.

    Examples
    --------
    >>> import tempfile
    >>> path = build_report(out=tempfile.mkdtemp())  # doctest: +SKIP
    """
    from ketameta.review.report.assemble import assemble

    say = progress or (lambda _msg: None)
    data_path = Path(data) if data else bundled_path()
    config_path = Path(config) if config else None
    cfg: ReportConfig = load_config(config_path)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir} is a file, not a directory")
    say(f"loading {data_path.resolve()}")
    studies = load_studies(data_path)
    if studies.empty:
        raise DataValidationError(f"{data_path}: no records: the report needs at least one study")
    screening_path = data_path.with_name("screening.csv")
    screening = load_screening(screening_path if screening_path.exists() else None)
    tables: dict[str, pd.DataFrame] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        body = assemble(
            studies,
            screening,
            cfg,
            tables,
            data_path=data_path,
            config_path=config_path,
            say=say,
            caught=caught,
        )
    say(f"writing {out_dir}")
    tables_dir = out_dir / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    _write(index, body.encode("utf-8"))
    written = set()
    for name, frame in sorted(tables.items()):
        frame = guard_csv(frame) if cfg.csv_guard else frame
        target = tables_dir / f"{name}.csv"
        _write(target, frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        written.add(target.name)
    for stale in tables_dir.glob("*.csv"):  # tables of an earlier build that this one lacks
        if stale.name not in written:
            stale.unlink()
    return index


def _write(path: Path, content: bytes) -> None:
    """Write a file without following a symbolic link out of the output folder."""
    if path.is_symlink():
        path.unlink()
    path.write_bytes(content)
