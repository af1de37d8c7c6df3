"""ketameta: meta-analysis of the ketamine and esketamine evidence, exact to R's metafor.

Two parts: the general library (`ketameta.synthesis` over the numeric core `ketameta._core`,
with `ketameta.plots` and `ketameta.tables`) and the ketamine review built on it
(`ketameta.review`). Everything public is re-exported here; ``km.analyses`` is the review's
named questions (`ketameta.review.questions`).

Names load on first use (PEP 562), so ``import ketameta`` stays fast and a command that needs
only the data loader never imports matplotlib, statsmodels or the report.

Examples
--------
>>> import ketameta as km
>>> res = km.meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03], method="REML")
>>> round(res.estimate, 3)
-0.381
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

# public name -> (module, attribute); attribute None = the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "plots": ("ketameta.plots", None),
    "tables": ("ketameta.tables", None),
    "analyses": ("ketameta.review.questions", None),
    "load_published": ("ketameta.review.published", "load_published"),
    "load_screening": ("ketameta.review.studies", "load_screening"),
    "load_studies": ("ketameta.review.studies", "load_studies"),
    "validate_studies": ("ketameta.review.studies", "validate_studies"),
    "BayesResult": ("ketameta.synthesis.bayes", "BayesResult"),
    "meta_bayes": ("ketameta.synthesis.bayes", "meta_bayes"),
    "begg_test": ("ketameta.synthesis.bias", "begg_test"),
    "egger_test": ("ketameta.synthesis.bias", "egger_test"),
    "fail_safe_n": ("ketameta.synthesis.bias", "fail_safe_n"),
    "pet_peese": ("ketameta.synthesis.bias", "pet_peese"),
    "trim_and_fill": ("ketameta.synthesis.bias", "trim_and_fill"),
    "BinaryResult": ("ketameta.synthesis.binary", "BinaryResult"),
    "meta_mh": ("ketameta.synthesis.binary", "meta_mh"),
    "meta_peto": ("ketameta.synthesis.binary", "meta_peto"),
    "escalc": ("ketameta.synthesis.effects", "escalc"),
    "grade": ("ketameta.synthesis.grade", "grade"),
    "combine_binary_arms": ("ketameta.synthesis.multiarm", "combine_binary_arms"),
    "combine_continuous_arms": ("ketameta.synthesis.multiarm", "combine_continuous_arms"),
    "resolve_shared_controls": ("ketameta.synthesis.multiarm", "resolve_shared_controls"),
    "split_shared_control": ("ketameta.synthesis.multiarm", "split_shared_control"),
    "MetaMVResult": ("ketameta.synthesis.multilevel_results", "MetaMVResult"),
    "meta_mv": ("ketameta.synthesis.multilevel", "meta_mv"),
    "vcalc": ("ketameta.synthesis.multilevel", "vcalc"),
    "RobustResult": ("ketameta.synthesis.robust", "RobustResult"),
    "robust": ("ketameta.synthesis.robust", "robust"),
    "wald_test": ("ketameta.synthesis.robust", "wald_test"),
    "meta": ("ketameta.synthesis.pooling", "meta"),
    "meta_batch": ("ketameta.synthesis.pooling", "meta_batch"),
    "MetaRegResult": ("ketameta.synthesis.regression", "MetaRegResult"),
    "PermutationResult": ("ketameta.synthesis.regression", "PermutationResult"),
    "metareg": ("ketameta.synthesis.regression", "metareg"),
    "permutest": ("ketameta.synthesis.regression", "permutest"),
    "BatchResult": ("ketameta.synthesis.results", "BatchResult"),
    "MetaResult": ("ketameta.synthesis.results", "MetaResult"),
    "baujat": ("ketameta.synthesis.sensitivity", "baujat"),
    "cumulative": ("ketameta.synthesis.sensitivity", "cumulative"),
    "gosh": ("ketameta.synthesis.sensitivity", "gosh"),
    "influence": ("ketameta.synthesis.sensitivity", "influence"),
    "leave_one_out": ("ketameta.synthesis.sensitivity", "leave_one_out"),
    "without_high_risk": ("ketameta.synthesis.sensitivity", "without_high_risk"),
    "SubgroupResult": ("ketameta.synthesis.subgroup", "SubgroupResult"),
    "SubgroupTest": ("ketameta.synthesis.subgroup", "SubgroupTest"),
    "subgroup": ("ketameta.synthesis.subgroup", "subgroup"),
    "SelectionResult": ("ketameta.synthesis.selection", "SelectionResult"),
    "selection_model": ("ketameta.synthesis.selection", "selection_model"),
    "ExcessSignificanceResult": ("ketameta.synthesis.smallstudy", "ExcessSignificanceResult"),
    "HenmiCopasResult": ("ketameta.synthesis.smallstudy", "HenmiCopasResult"),
    "excess_significance": ("ketameta.synthesis.smallstudy", "excess_significance"),
    "henmi_copas": ("ketameta.synthesis.smallstudy", "henmi_copas"),
    "harbord_test": ("ketameta.synthesis.bias_binary", "harbord_test"),
    "macaskill_test": ("ketameta.synthesis.bias_binary", "macaskill_test"),
    "peters_test": ("ketameta.synthesis.bias_binary", "peters_test"),
}

__all__ = [
    "BatchResult",
    "BayesResult",
    "BinaryResult",
    "ConvergenceWarning",
    "DataValidationError",
    "ExcessSignificanceResult",
    "ExcludedStudyWarning",
    "HenmiCopasResult",
    "KetametaError",
    "KetametaWarning",
    "MetaMVResult",
    "MetaRegResult",
    "MetaResult",
    "PermutationResult",
    "RobustResult",
    "SelectionResult",
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
    "excess_significance",
    "fail_safe_n",
    "gosh",
    "grade",
    "harbord_test",
    "henmi_copas",
    "influence",
    "leave_one_out",
    "load_published",
    "load_screening",
    "load_studies",
    "macaskill_test",
    "meta",
    "meta_batch",
    "meta_bayes",
    "meta_mh",
    "meta_mv",
    "meta_peto",
    "metareg",
    "permutest",
    "pet_peese",
    "peters_test",
    "plots",
    "resolve_shared_controls",
    "robust",
    "selection_model",
    "split_shared_control",
    "subgroup",
    "tables",
    "trim_and_fill",
    "validate_studies",
    "vcalc",
    "wald_test",
    "without_high_risk",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ketameta' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from ketameta import plots, tables
    from ketameta.review import questions as analyses
    from ketameta.review.published import load_published
    from ketameta.review.studies import load_screening, load_studies, validate_studies
    from ketameta.synthesis.bayes import BayesResult, meta_bayes
    from ketameta.synthesis.bias import begg_test, egger_test, fail_safe_n, pet_peese, trim_and_fill
    from ketameta.synthesis.bias_binary import harbord_test, macaskill_test, peters_test
    from ketameta.synthesis.binary import BinaryResult, meta_mh, meta_peto
    from ketameta.synthesis.effects import escalc
    from ketameta.synthesis.grade import grade
    from ketameta.synthesis.multiarm import (
        combine_binary_arms,
        combine_continuous_arms,
        resolve_shared_controls,
        split_shared_control,
    )
    from ketameta.synthesis.multilevel import meta_mv, vcalc
    from ketameta.synthesis.pooling import meta, meta_batch
    from ketameta.synthesis.regression import MetaRegResult, PermutationResult, metareg, permutest
    from ketameta.synthesis.results import BatchResult, MetaResult
    from ketameta.synthesis.robust import RobustResult, robust, wald_test
    from ketameta.synthesis.selection import SelectionResult, selection_model
    from ketameta.synthesis.sensitivity import (
        baujat,
        cumulative,
        gosh,
        influence,
        leave_one_out,
        without_high_risk,
    )
    from ketameta.synthesis.smallstudy import (
        ExcessSignificanceResult,
        HenmiCopasResult,
        excess_significance,
        henmi_copas,
    )
    from ketameta.synthesis.subgroup import SubgroupResult, SubgroupTest, subgroup
