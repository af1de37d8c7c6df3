"""ketameta: meta-analysis of the ketamine and esketamine evidence, exact to R's metafor."""

from __future__ import annotations

from ketameta.analysis import meta, meta_batch
from ketameta.effects import escalc
from ketameta.exceptions import (
    ConvergenceWarning,
    DataValidationError,
    ExcludedStudyWarning,
    KetametaError,
    KetametaWarning,
    SingleStudyWarning,
    ZeroCellWarning,
)
from ketameta.regression import MetaRegResult, PermutationResult, metareg
from ketameta.results import BatchResult, MetaResult
from ketameta.subgroup import SubgroupResult, SubgroupTest, subgroup

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "ConvergenceWarning",
    "DataValidationError",
    "ExcludedStudyWarning",
    "KetametaError",
    "KetametaWarning",
    "MetaRegResult",
    "MetaResult",
    "PermutationResult",
    "SingleStudyWarning",
    "SubgroupResult",
    "SubgroupTest",
    "ZeroCellWarning",
    "__version__",
    "escalc",
    "meta",
    "meta_batch",
    "metareg",
    "subgroup",
]
