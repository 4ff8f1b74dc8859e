"""Header directives, audit syntax, parse errors and fingerprint normalization."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlglot.tokens import Tokenizer, TokenType

from warehouse.errors import ModelError
from warehouse.project.model import (
    AuditSpec,
    ModelKind,
    model_name_from_path,
    parse_audits,
    split_top_level,
    sql_model,
)

PATH = Path("sql/staging/orders.sql")


def test_header_directives_become_model_fields() -> None:
    model = sql_model(
        "staging.orders",
        PATH,
        """-- kind: incremental_by_time
-- time_column: order_date
-- lookback: 2
-- grain: order_id, line
-- tags: core, daily
-- description: Orders.
-- column order_id: The id.
-- audits: not_null(order_id), accepted_values(status, 'a,b', 'c'), row_count(min=1)
-- assert: qty > 0
-- This line is free text and ignored.
select order_id, line, status, qty, order_date from source.orders
where order_date between $start_date and $end_date""",
    )
    assert model.kind is ModelKind.INCREMENTAL_BY_TIME
    assert (model.time_column, model.lookback) == ("order_date", 2)
    assert model.grain == ("order_id", "line")
    assert model.tags == ("core", "daily")
    assert model.columns == (("order_id", "The id."),)
    assert model.audits == (
        AuditSpec("not_null", ("order_id",)),
        AuditSpec("accepted_values", ("status", "a,b", "c")),
        AuditSpec("row_count", (), (("min", "1"),)),
    )
    assert model.asserts == ("qty > 0",)
    assert model.parameters == {"start_date", "end_date"}
    assert [r.qualified for r in model.refs] == ["source.orders"]


def test_unknown_directive_suggests_the_closest() -> None:
    with pytest.raises(ModelError) as failure:
        sql_model("staging.orders", PATH, "-- kind: full\n-- grian: id\nselect 1 as id")
    assert str(failure.value).startswith(f"{PATH}:2: unknown directive 'grian'")
    assert "did you mean 'grain'?" in str(failure.value)


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("select (1 from t", "SQL does not parse", 1, 14),
        ("select 1;\nselect 2", "exactly one SELECT, found 2", None, None),
        ("insert into t values (1)", "must be a SELECT, found INSERT", None, None),
        ("-- kind: table\nselect 1", "unknown kind 'table'", 1, None),
        ("-- kind: incremental_by_time\nselect 1", "needs a time_column", 1, None),
        ("-- lookback: 3\nselect 1", "apply only to kind incremental_by_time", 1, None),
        (
            "select * from t where d > $start_date",
            "only set for kind incremental_by_time",
            1,
            27,
        ),
        ("select $cutoff", "unknown parameter $cutoff", 1, 8),
        ("select id from\n  arrived.orders", "'arrived.orders' is only set in incremental", 2, 3),
        ("select id from this", "'this' is only set in incremental_by_time models", 1, 16),
        (
            "-- kind: incremental_by_time\n-- time_column: d\nselect *\nfrom this",
            "names every column it returns (no select *)",
            4,
            6,
        ),
    ],
)
def test_invalid_models_name_file_line_and_column(
    text: str, message: str, line: int | None, column: int | None
) -> None:
    with pytest.raises(ModelError) as failure:
        sql_model("staging.orders", PATH, text)
    assert message in str(failure.value)
    assert (failure.value.line, failure.value.column) == (line, column)
    assert str(failure.value).startswith(str(PATH))


def test_an_incremental_model_reads_arrived_files_and_its_extended_version() -> None:
    model = sql_model(
        "checks.lines",
        PATH,
        "-- kind: incremental_by_time\n-- time_column: d\n"
        "select id, d from arrived.lines\n"
        "union all\n"
        "select id, d from this where d is null",
    )
    assert model.reads_this and model.output_names == ("id", "d")
    assert [r.qualified for r in model.refs] == ["arrived.lines", "this"]


def test_table_refs_skip_ctes_and_table_functions_and_keep_positions() -> None:
    model = sql_model(
        "a.b",
        PATH,
        "with x as (select * from staging.orders)\n"
        "select * from x join source.items i using (id), range(3) r",
    )
    refs = {r.qualified: (r.line, r.column) for r in model.refs}
    assert refs == {"staging.orders": (1, 26), "source.items": (2, 22)}


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("sql/staging/orders.sql", "staging.orders"),
        ("sql/features/sub/demand.sql", "features.demand"),
    ],
)
def test_model_names_come_from_folders(path: str, name: str) -> None:
    assert model_name_from_path(Path(path), Path("sql")) == name


@pytest.mark.parametrize(
    "path",
    [
        "sql/orders.sql",
        "sql/Stage/orders.sql",
        "sql/staging/order-items.sql",
        "sql/source/orders.sql",
    ],
)
def test_unsafe_or_reserved_names_are_refused(path: str) -> None:
    with pytest.raises(ModelError):
        model_name_from_path(Path(path), Path("sql"))


def test_audit_list_with_quotes_and_options() -> None:
    specs = parse_audits(
        "unique(a, b), accepted_values(s, 'x, y', \"z\"), row_count(max=5)", PATH, 1
    )
    assert [s.label for s in specs] == [
        "unique(a, b)",
        "accepted_values(s, x, y, z)",
        "row_count(max=5)",
    ]
    assert specs[1].args == ("s", "x, y", "z")


# an audit-like call: a name with arguments that nest calls and quote commas and parentheses
_ATOM = st.sampled_from(["a", "b_1", "'x, y'", "'(z'", '"q)"', "n=2"])
_CALL = st.recursive(
    _ATOM,
    lambda inner: st.builds(
        lambda name, args: f"{name}({', '.join(args)})",
        st.sampled_from(["f", "g"]),
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


@example(["f(a, g(b, 'x, y'))", "h"])  # commas at depth 1 and 2 and inside quotes
@given(st.lists(_CALL, min_size=1, max_size=5))
def test_split_top_level_never_splits_inside_parentheses(items: list[str]) -> None:
    """Joining items with top-level commas and splitting gives the items back: a split on
    every comma (or one that ignores quotes or nesting) cuts an item apart."""
    assert split_top_level(", ".join(items)) == items


# fingerprints --------------------------------------------------------------------------------

QUERIES = [
    "select o.order_id, sum(i.quantity) as units from staging.orders as o join "
    "staging.order_items as i on i.order_id = o.order_id where o.status <> 'cancelled' "
    "group by o.order_id",
    "with d as (select product_id, count(*) as n from features.demand group by 1) "
    "select * from d where n > 10 order by n desc limit 5",
    "select product_id, case when units > 0 then 1 else 0 end as sold from features.demand",
]


def _reformat(sql: str, data: st.DataObject) -> str:
    """Rebuild the query from its tokens with other whitespace, comments and keyword case."""
    pieces = []
    for token in Tokenizer().tokenize(sql):
        text = sql[token.start : token.end + 1]
        if token.token_type not in (
            TokenType.VAR,
            TokenType.STRING,
            TokenType.NUMBER,
            TokenType.IDENTIFIER,
        ):
            text = data.draw(st.sampled_from([text.lower(), text.upper(), text.title()]))
        pieces.append(text)
        pieces.append(
            data.draw(st.sampled_from([" ", "  ", "\n", "\n\t", " /* c */ ", " -- note\n"]))
        )
    return "".join(pieces)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.sampled_from(QUERIES), st.data())
def test_fingerprint_is_stable_under_formatting(sql: str, data: st.DataObject) -> None:
    original = sql_model("a.b", PATH, sql)
    reformatted = sql_model("a.b", PATH, _reformat(sql, data))
    assert reformatted.data_hash() == original.data_hash()


SEMANTIC_EDITS = [
    ("'cancelled'", "'returned'"),
    ("> 10", ">= 10"),
    ("limit 5", "limit 6"),
    ("sum(", "avg("),
    ("then 1", "then 2"),
    ("desc", "asc"),
    ("as units", "as qty"),
    ("<>", "="),
]


# every edit with a query it applies to: each pair runs, none returns early
EDITED = [(sql, edit) for edit in SEMANTIC_EDITS for sql in QUERIES if edit[0] in sql]


def test_every_semantic_edit_applies_to_some_query() -> None:
    assert {edit for _, edit in EDITED} == set(SEMANTIC_EDITS)


@pytest.mark.parametrize(("sql", "change"), EDITED, ids=[e[0] for _, e in EDITED])
@settings(max_examples=8, deadline=None, derandomize=True)
@given(data=st.data())
def test_fingerprint_changes_under_semantic_changes(
    sql: str, change: tuple[str, str], data: st.DataObject
) -> None:
    old, new = change
    original = sql_model("a.b", PATH, sql)
    edited = sql_model("a.b", PATH, _reformat(sql.replace(old, new, 1), data))
    assert edited.data_hash() != original.data_hash()


def test_metadata_does_not_change_the_fingerprint() -> None:
    plain = sql_model("a.b", PATH, "select 1 as x")
    documented = sql_model(
        "a.b",
        PATH,
        "-- description: One.\n-- column x: the x\n"
        "-- audits: not_null(x)\n-- tags: t\nselect 1 as x",
    )
    assert plain.data_hash() == documented.data_hash()
    assert sql_model("a.b", PATH, "-- kind: view\nselect 1 as x").data_hash() != plain.data_hash()
