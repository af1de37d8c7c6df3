"""ketameta: meta-analysis of the ketamine and esketamine evidence, exact to R's metafor.

Two parts: the general library (`ketameta.synthesis` over the numeric core `ketameta._core`,
with `ketameta.plots` and `ketameta.tables`) and the ketamine review built on it
(`ketameta.review`). Everything public is re-exported here; ``km.analyses`` is the review's
named questions (`ketameta.review.questions`).

Examples
--------
>>> import ketameta as km
>>> res = km.meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03], method="REML")
>>> round(res.estimate, 3)
-0.381
"""

from __future__ import annotations

from ketameta import plots, tables
from ketameta.exceptions import (
    ConvergenceWarning,
    DataValidationError,
    ExcludedStudyWarning,
    KetametaError,
    KetametaWarning,
    SingleStudyWarning,
    ZeroCellWarning,
)
from ketameta.review import questions as analyses
from ketameta.review.published import load_published
from ketameta.review.studies import load_screening, load_studies, validate_studies
from ketameta.synthesis.bayes import BayesResult, meta_bayes
from ketameta.synthesis.bias import begg_test, egger_test, fail_safe_n, pet_peese, trim_and_fill
from ketameta.synthesis.binary import BinaryResult, meta_mh, meta_peto
from ketameta.synthesis.effects import escalc
from ketameta.synthesis.multiarm import (
    combine_binary_arms,
    combine_continuous_arms,
    resolve_shared_controls,
    split_shared_control,
)
from ketameta.synthesis.pooling import meta, meta_batch
from ketameta.synthesis.regression import MetaRegResult, PermutationResult, metareg, permutest
from ketameta.synthesis.results import BatchResult, MetaResult
from ketameta.synthesis.sensitivity import (
    baujat,
    cumulative,
    gosh,
    influence,
    leave_one_out,
    without_high_risk,
)
from ketameta.synthesis.subgroup import SubgroupResult, SubgroupTest, subgroup

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "BayesResult",
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
    "combine_binary_arms",
    "combine_continuous_arms",
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
    "meta_bayes",
    "meta_mh",
    "meta_peto",
    "metareg",
    "permutest",
    "pet_peese",
    "resolve_shared_controls",
    "split_shared_control",
    "plots",
    "subgroup",
    "tables",
    "trim_and_fill",
    "validate_studies",
    "without_high_risk",
]
