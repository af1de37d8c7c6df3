"""`read_studies_file`: a studies CSV read into text cells, the one parser of ``validate-data`` and
`load_studies`; a file that cannot be read as a CSV is a one-line `DataValidationError`."""

from __future__ import annotations

import csv
import errno
import io
from pathlib import Path

import pandas as pd

from ketameta.exceptions import DataValidationError


def _decode(raw: bytes, where: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataValidationError(
            f"{where}: UTF-16 encoded (byte-order mark at position 0); save it as CSV UTF-8"
        )
    try:
        text = raw.decode("utf-8-sig")  # UTF-8, with or without a byte-order mark
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise DataValidationError(
            f"{where}: not a UTF-8 text file (byte 0x{byte} at position {exc.start}, line "
            f"{line}); save it as CSV UTF-8",
            problems=[{"row": None, "column": None, "value": f"0x{byte}", "position": exc.start}],
        ) from None
    if "\x00" in text:
        raise DataValidationError(f"{where}: a binary file, not a CSV text file")
    return text


def read_studies_file(path: str | Path, *, allow_empty: bool = False) -> pd.DataFrame:
    """Read a studies CSV into a DataFrame of text cells, the one parser of ``validate-data``
    and `load_studies` (so that what validates loads to the same values).

    Every cell and column name is stripped of surrounding whitespace (``" iv "`` is ``iv``,
    ``"TRUE "`` is ``TRUE``, ``" 12.5"`` is ``12.5``); an empty cell is ``""``; blank lines are
    skipped. One-line errors naming the file (and line): a missing file (`FileNotFoundError`);
    a directory, an unreadable file, an encoding other than UTF-8 (with or without a byte-order
    mark; the offending byte and its offset are named), a binary file, an empty file, a
    semicolon- or tab-delimited file, a duplicated or unnamed column, rows with more or fewer
    fields than the header, and (unless ``allow_empty``) a header without rows:
    `DataValidationError` (a `KetametaError`).
    """
    file = Path(path)
    where = str(path)
    if not file.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", where)
    if file.is_dir():
        raise DataValidationError(f"{where}: is a directory, not a CSV file")
    try:
        raw = file.read_bytes()
    except PermissionError:
        raise DataValidationError(f"{where}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise DataValidationError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    text = _decode(raw, where)
    if not text.strip():
        raise DataValidationError(
            f"{where}: the file is empty (expected the header line of data/README.md's "
            "columns, then one row per record)"
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for record in reader:
            if record:  # a blank line gives []
                rows.append((reader.line_num, [cell.strip() for cell in record]))
    except csv.Error as exc:
        raise DataValidationError(
            f"{where}, line {reader.line_num}: not a readable CSV row ({exc})"
        ) from None
    (header_line, header), records = rows[0], rows[1:]
    if len(header) == 1:
        for sep, name in ((";", "semicolon"), ("\t", "tab")):
            if sep in header[0]:
                raise DataValidationError(
                    f"{where}: {name}-delimited (header {header[0][:60]!r}...); studies files are "
                    "comma-separated: save it as CSV with commas between fields and points as "
                    "decimal marks"
                )
    unnamed = [i + 1 for i, name in enumerate(header) if not name]
    if unnamed:
        raise DataValidationError(
            f"{where}, line {header_line}: header field(s) {', '.join(map(str, unnamed))} "
            "have no column name (a trailing or doubled comma?)"
        )
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise DataValidationError(
            f"{where}, line {header_line}: duplicate column(s) {', '.join(map(repr, twice))}",
            problems=[{"row": 0, "column": name, "problem": "duplicate column"} for name in twice],
        )
    ragged = [(line, len(cells)) for line, cells in records if len(cells) != len(header)]
    if ragged:
        (line, got), more = ragged[0], ragged[1:]
        also = (
            f" (and {len(more)} more such line(s): {', '.join(str(x) for x, _ in more[:10])})"
            if more
            else ""
        )
        raise DataValidationError(
            f"{where}, line {line}: {got} fields where the header has {len(header)} (a stray "
            f"comma, or a text cell with a comma that needs quotes?){also}",
            problems=[
                {
                    "row": None,
                    "line": x,
                    "column": None,
                    "problem": f"{n} fields, not {len(header)}",
                }
                for x, n in ragged
            ],
        )
    if not records and not allow_empty:
        raise DataValidationError(f"{where}: has a header line but no rows (no records)")
    df = pd.DataFrame([cells for _, cells in records], columns=header, dtype=str)
    df.attrs["source_path"] = where
    return df
