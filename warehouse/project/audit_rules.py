"""What each audit accepts, checked when the project loads: a misspelt audit, a missing
column or a bad option is a `file:line:col` error before anything is computed.

The SQL of each audit lives in `runtime/audits.py`, keyed by the same names (it asserts the
two agree when it is imported); this module knows only names, arguments and options, so
`wh plan` and the parse cache can check audits without the engine.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from warehouse.errors import ModelError

# an incremental version failing this audit missed rows: it is recomputed in full instead
COMPLETENESS_AUDIT = "same_row_count"


@dataclass(frozen=True)
class AuditRule:
    usage: str  # how it is called, for hints
    min_args: int
    max_args: int | None  # None: any number
    options: frozenset[str] = frozenset()
    whole_numbers: frozenset[str] = frozenset()  # options that must be whole numbers


WHERE = frozenset({"where"})  # every audit may look at some rows only
AUDIT_RULES: dict[str, AuditRule] = {
    "not_null": AuditRule("not_null(column, ...)", 1, None, WHERE),
    "unique": AuditRule("unique(column, ...)", 1, None, WHERE),
    "accepted_values": AuditRule("accepted_values(column, 'value', ...)", 2, None, WHERE),
    "row_count": AuditRule(
        "row_count(min=1, max=1000)", 0, 0, WHERE | {"min", "max"}, frozenset({"min", "max"})
    ),
    "freshness": AuditRule(
        "freshness(date_column, max_age_days=1)",
        1,
        1,
        WHERE | {"max_age_days"},
        frozenset({"max_age_days"}),
    ),
    COMPLETENESS_AUDIT: AuditRule(f"{COMPLETENESS_AUDIT}(schema.table)", 1, 1, WHERE),
}


def check_audit(
    name: str,
    args: tuple[str, ...],
    options: tuple[tuple[str, str], ...],
    path: Path | str,
    line: int | None,
    column: int | None,
) -> None:
    """Raise a ModelError saying what is wrong with this call, where, and what to write."""
    rule = AUDIT_RULES.get(name)
    if rule is None:
        close = difflib.get_close_matches(name, AUDIT_RULES, n=1)
        known = f"audits: {', '.join(sorted(AUDIT_RULES))}, or an '-- assert: <condition>' line"
        hint = f"did you mean '{close[0]}'? ({known})" if close else known
        raise ModelError(f"unknown audit '{name}'", path, line, column, hint=hint)
    count = len(args)
    if count < rule.min_args or (rule.max_args is not None and count > rule.max_args):
        raise ModelError(
            f"audit {name} takes {_arity(rule)}, found {count}",
            path,
            line,
            column,
            hint=f"write it as {rule.usage}",
        )
    for key, value in options:
        if key not in rule.options:
            close = difflib.get_close_matches(key, rule.options, n=1)
            raise ModelError(
                f"audit {name} has no option '{key}'",
                path,
                line,
                column,
                hint=(f"did you mean '{close[0]}'? " if close else "")
                + f"options: {', '.join(sorted(rule.options))}",
            )
        if key in rule.whole_numbers and not value.lstrip("-").isdigit():
            raise ModelError(
                f"audit {name}: {key} must be a whole number, found '{value}'",
                path,
                line,
                column,
                hint=f"write it as {rule.usage}",
            )


def _arity(rule: AuditRule) -> str:
    if rule.max_args == 0:
        return "no columns (only options)"
    if rule.max_args == rule.min_args:
        return f"{rule.min_args} argument{'s' if rule.min_args > 1 else ''}"
    return f"at least {rule.min_args} argument{'s' if rule.min_args > 1 else ''}"
