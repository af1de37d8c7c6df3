"""ketameta: meta-analysis of the ketamine and esketamine evidence, exact to R's metafor.

Examples
--------
>>> import ketameta as km
>>> res = km.meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03], method="REML")
>>> round(res.estimate, 3)
-0.381
"""

from __future__ import annotations

from ketameta import analyses, plots, tables
from ketameta.analysis import meta, meta_batch
from ketameta.bias import begg_test, egger_test, fail_safe_n, pet_peese, trim_and_fill
from ketameta.binary import BinaryResult, meta_mh, meta_peto
from ketameta.data import load_screening, load_studies, validate_studies
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
from ketameta.published import load_published
from ketameta.regression import MetaRegResult, PermutationResult, metareg, permutest
from ketameta.results import BatchResult, MetaResult
from ketameta.sensitivity import (
    baujat,
    cumulative,
    gosh,
    influence,
    leave_one_out,
    without_high_risk,
)
from ketameta.subgroup import SubgroupResult, SubgroupTest, subgroup

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "BinaryResult",
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
    "analyses",
    "baujat",
    "begg_test",
    "cumulative",
    "egger_test",
    "escalc",
    "fail_safe_n",
    "gosh",
    "influence",
    "leave_one_out",
    "load_screening",
    "load_studies",
    "load_published",
    "meta",
    "meta_batch",
    "meta_mh",
    "meta_peto",
    "metareg",
    "permutest",
    "pet_peese",
    "plots",
    "subgroup",
    "tables",
    "trim_and_fill",
    "validate_studies",
    "without_high_risk",
]
