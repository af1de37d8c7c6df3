"""Named errors and warnings raised by ketameta.

Every input error names the argument (and, for DataFrame input, the row and column);
every warning is one of the classes below so that callers can filter or escalate it.
"""

from __future__ import annotations


class KetametaError(Exception):
    """Base class of every error raised by ketameta."""


class DataValidationError(KetametaError, ValueError):
    """Input data failed validation; the message lists every problem found (row, column, value)."""

    def __init__(self, message: str, problems: list[dict] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class KetametaWarning(UserWarning):
    """Base class of every warning raised by ketameta."""


class ConvergenceWarning(KetametaWarning):
    """An iterative estimator (REML, ML, EB, PM, ...) did not converge to tolerance."""


class SingleStudyWarning(KetametaWarning):
    """Only one study was available: it is returned as the pooled estimate with tau2 = 0."""


class ZeroCellWarning(KetametaWarning):
    """A 2x2 table has a zero cell (or two): corrected or dropped."""


class ExcludedStudyWarning(KetametaWarning):
    """A study (row) could not be used and was excluded; the message names it and the reason."""
