"""`CliError` and the one-line ``ketameta: error: ...`` / ``ketameta: warning: ...`` messages."""

from __future__ import annotations

import sys
import warnings

from ketameta.exceptions import KetametaError


class CliError(KetametaError):
    """A problem with the user's input, reported as one line and exit status 1."""


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip() or type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not a UTF-8 text file ({exc.reason} at position {exc.start})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return _one_line(exc)


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for w in caught:
        text = _one_line(w.message)
        if text not in seen:
            seen.add(text)
            print(f"ketameta: warning: {text}", file=sys.stderr)
