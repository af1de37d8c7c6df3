"""ketameta: meta-analysis of the ketamine and esketamine evidence, exact to R's metafor."""

from __future__ import annotations

from ketameta.exceptions import (
    ConvergenceWarning,
    DataValidationError,
    ExcludedStudyWarning,
    KetametaError,
    KetametaWarning,
    SingleStudyWarning,
    ZeroCellWarning,
)

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DataValidationError",
    "ExcludedStudyWarning",
    "KetametaError",
    "KetametaWarning",
    "SingleStudyWarning",
    "ZeroCellWarning",
    "__version__",
]
