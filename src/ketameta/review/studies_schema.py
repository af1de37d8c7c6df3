"""The schema of ``studies.csv``: the allowed values (`ENUMS`), one `Rule` per column (`SCHEMA`)
and a validation `Problem`.

The schema is declarative: `SCHEMA` holds one `Rule` per column of the data dictionary
(``data/README.md``): kind (text, enum, whole number, number, true/false), required or not,
allowed values, bounds, whether the number must be found in the row's ``source_quote``, and
whether it belongs to arm 2. `ketameta.review.studies_validation` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

ENUMS: dict[str, tuple[str, ...]] = {
    "design": (
        "parallel_rct",
        "crossover_rct",
        "factorial_rct",
        "single_arm",
        "nonrandomised_controlled",
        "observational",
    ),
    "blinding": ("double_blind", "single_blind", "open_label"),
    "condition": (
        "trd",
        "mdd",
        "bipolar_depression",
        "mixed_depression",
        "ptsd",
        "suicidal_ideation",
        "substance_use",
        "chronic_pain_depression",
        "eating_disorder",
        "other",
    ),
    "drug": ("racemic_ketamine", "esketamine", "arketamine"),
    "route": ("iv", "intranasal", "oral", "im", "sc", "sublingual"),
    "psychotherapy_both_arms": ("yes", "no", "na"),
    "comparator": (
        "saline_placebo",
        "midazolam",
        "placebo_spray_plus_oral_ad",
        "psychotherapy_alone",
        "usual_care",
        "other_active",
        "none",
    ),
    "contrast": ("ketamine_vs_control", "therapy_added_to_ketamine", "head_to_head", "prepost"),
    "source_type": ("primary", "secondary"),
    "crossover_data": ("first_period", "paired", "both_periods"),
    "outcome_construct": (
        "depression",
        "ptsd",
        "suicidal_ideation",
        "substance_use",
        "anxiety",
        "other",
    ),
    "direction": ("lower_is_better", "higher_is_better"),
    "outcome_type": ("endpoint", "change", "response", "remission", "relapse", "effect_estimate"),
    "effect_type": ("MD", "LSMD", "SMD_d", "SMD_g", "RR", "OR", "HR", "RD"),
    "risk_of_bias": ("low", "some_concerns", "high"),
}
TEXT, ENUM, INT, FLOAT, BOOL = "text", "enum", "int", "float", "bool"


@dataclass(frozen=True)
class Rule:
    """What one column of ``studies.csv`` may hold (``data/README.md`` is the dictionary).

    ``kind``: text, enum (``allowed``), int (whole numbers), float or bool (``true``/``false``);
    ``required``: no empty cell; ``minimum``/``maximum``: inclusive bounds; ``quoted``: the
    number must appear in ``source_quote`` unless ``derived`` assigns this column; ``arm2``:
    must be empty in a single-arm record.
    """

    kind: str = TEXT
    required: bool = False
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    quoted: bool = False
    arm2: bool = False


def _enum(column: str, required: bool = True) -> Rule:
    return Rule(ENUM, required=required, allowed=ENUMS[column])


_COUNT = {"kind": INT, "quoted": True}
SCHEMA: dict[str, Rule] = {
    "study_id": Rule(required=True),
    "record_id": Rule(required=True),
    "first_author": Rule(required=True),
    "year": Rule(INT, required=True, minimum=1900, maximum=2100),
    "title": Rule(),
    "doi": Rule(),
    "pmid": Rule(),
    "pmcid": Rule(),
    "registry_id": Rule(),
    "design": _enum("design"),
    "blinding": _enum("blinding", required=False),
    "population": Rule(),
    "condition": _enum("condition"),
    "drug": _enum("drug"),
    "route": _enum("route"),
    "dose": Rule(),
    "dose_mg_kg": Rule(FLOAT, minimum=0),
    "sessions": Rule(INT, minimum=1),
    "psychotherapy": Rule(required=True),
    "psychotherapy_both_arms": _enum("psychotherapy_both_arms"),
    "arm1_label": Rule(),
    "arm2_label": Rule(),
    "comparator": _enum("comparator"),
    "contrast": _enum("contrast"),
    "shared_control_group": Rule(),
    "outcome_construct": _enum("outcome_construct"),
    "scale": Rule(),
    "direction": _enum("direction"),
    "outcome_type": _enum("outcome_type"),
    "timepoint_days": Rule(FLOAT, minimum=0),
    "timepoint_label": Rule(),
    "primary": Rule(BOOL, required=True),
    "n1": Rule(**_COUNT, minimum=1),
    "mean1": Rule(FLOAT, quoted=True),
    "sd1": Rule(FLOAT, minimum=0, quoted=True),
    "se1": Rule(FLOAT, minimum=0, quoted=True),
    "n2": Rule(**_COUNT, minimum=1, arm2=True),
    "mean2": Rule(FLOAT, quoted=True, arm2=True),
    "sd2": Rule(FLOAT, minimum=0, quoted=True, arm2=True),
    "se2": Rule(FLOAT, minimum=0, quoted=True, arm2=True),
    "baseline_mean1": Rule(FLOAT, quoted=True),
    "baseline_sd1": Rule(FLOAT, minimum=0, quoted=True),
    "prepost_r": Rule(FLOAT, minimum=-1, maximum=1, quoted=True),
    "events1": Rule(**_COUNT, minimum=0),
    "events2": Rule(**_COUNT, minimum=0, arm2=True),
    "effect_type": _enum("effect_type", required=False),
    "effect": Rule(FLOAT, quoted=True),
    "effect_se": Rule(FLOAT, minimum=0, quoted=True),
    "effect_ci_low": Rule(FLOAT, quoted=True),
    "effect_ci_high": Rule(FLOAT, quoted=True),
    "ci_level": Rule(FLOAT, minimum=50, maximum=99.99),
    "analysis_set": Rule(),
    "crossover_data": _enum("crossover_data", required=False),
    "duplicate_of": Rule(),
    "t_stat": Rule(FLOAT, quoted=True),
    "source": Rule(required=True),
    "source_type": _enum("source_type"),
    "source_location": Rule(required=True),
    "source_quote": Rule(required=True),
    "derived": Rule(),
    "risk_of_bias": _enum("risk_of_bias"),
    "risk_of_bias_reason": Rule(),
    "notes": Rule(),
}
NUMBERS = tuple(name for name, rule in SCHEMA.items() if rule.quoted)
OPTIONAL_NUMERIC = tuple(name for name, rule in SCHEMA.items() if rule.kind in (INT, FLOAT))
# events within [0, n] of the same arm
EVENT_LIMITS = (("events1", "n1"), ("events2", "n2"))


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is (1-based data row; line = row + 1) and what."""

    row: int
    record_id: str
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row} ({self.record_id or '-'}), column {self.column!r}"
        return f"{where}, value {self.value!r}: {self.message}"
