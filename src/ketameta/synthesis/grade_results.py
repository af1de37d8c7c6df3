"""The result of a GRADE rating: one `DomainRating` per domain and the `GradeAssessment`.

`ketameta.synthesis.grade.grade` builds them; a domain rating keeps the rule's downgrade next
to any override and its reason, and says in one sentence (``footnote``) why it moved.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

_NUMBER = {0: "no", 1: "one level", 2: "two levels"}


@dataclass(frozen=True)
class DomainRating:
    """One GRADE domain: the rule's downgrade, the final downgrade and why.

    ``downgrade`` is what counts (the override if one was given, else ``rule_downgrade``);
    ``assessed`` is False where the domain could not be judged (e.g. a single study).
    """

    domain: str
    downgrade: int
    rule_downgrade: int
    reason: str
    overridden: bool = False
    override_reason: str | None = None
    assessed: bool = True

    def footnote(self) -> str | None:
        """The clinician-facing sentence for this domain, or None when nothing needs saying."""
        name = self.domain.replace("_", " ").capitalize()
        if self.overridden:
            return (
                f"{name}: the rule gave {_NUMBER[self.rule_downgrade]} downgrade "
                f"({self.reason}); overridden to {_NUMBER[self.downgrade]} downgrade "
                f"because {self.override_reason}."
            )
        if self.downgrade:
            return f"{name}: downgraded {_NUMBER[self.downgrade]}: {self.reason}."
        if not self.assessed:
            return f"{name}: {self.reason}."
        return None


@dataclass(frozen=True)
class GradeAssessment:
    """A GRADE rating: ``certainty`` ("high" ... "very low"), the ``domains`` and the ``start``.

    Examples
    --------
    >>> from ketameta.synthesis.grade import grade
    >>> from ketameta.synthesis.pooling import meta
    >>> res = meta([-0.5, -0.3, -0.4], [0.01, 0.02, 0.015], labels=["A", "B", "C"])
    >>> g = grade(res, risk_of_bias=["high", "low", "low"], information=900)
    >>> g.certainty
    'moderate'
    >>> g.summary()["downgrade"].tolist()
    [1, 0, 0, 0, 0]
    """

    certainty: str
    domains: tuple[DomainRating, ...]
    start: str = "high"

    @property
    def total_downgrade(self) -> int:
        """Sum of the final downgrades over the domains."""
        return sum(d.downgrade for d in self.domains)

    def domain(self, name: str) -> DomainRating:
        """The rating of one domain by name (e.g. ``"imprecision"``)."""
        return next(d for d in self.domains if d.domain == name)

    def footnotes(self) -> list[str]:
        """One sentence per downgrade, override or domain that could not be assessed."""
        return [note for d in self.domains if (note := d.footnote()) is not None]

    def summary(self) -> pd.DataFrame:
        """One row per domain: ``rule_downgrade, downgrade, overridden, override_reason, reason,
        assessed``; ``attrs["certainty"]`` and ``attrs["start"]`` hold the overall rating."""
        rows = [
            {
                "domain": d.domain,
                "rule_downgrade": d.rule_downgrade,
                "downgrade": d.downgrade,
                "overridden": d.overridden,
                "override_reason": d.override_reason,
                "reason": d.reason,
                "assessed": d.assessed,
            }
            for d in self.domains
        ]
        table = pd.DataFrame(rows).set_index("domain")
        table.attrs.update(certainty=self.certainty, start=self.start)
        return table

    def __str__(self) -> str:
        head = (
            f"GRADE certainty: {self.certainty} (start {self.start}, "
            f"{self.total_downgrade} level(s) down)"
        )
        lines = [head]
        for d in self.domains:
            flag = " [override]" if d.overridden else ""
            lines.append(f"  {d.domain:<17} {-d.downgrade:>2}{flag}  {d.reason}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        table = self.summary().to_html(border=0)
        title = html.escape(f"GRADE certainty: {self.certainty} (start {self.start})")
        return f"<div><strong>{title}</strong>{table}</div>"
