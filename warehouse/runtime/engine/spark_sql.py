"""wh's Spark dialect: a model's DuckDB SQL rewritten so Spark computes the same rows.

DuckDB is the source of truth for what a model means. sqlglot transpiles most of DuckDB's
SQL to Spark's; this module adds the rewrites where its output fails on Spark or, worse, runs
and gives other values (tests/scale: each silent one is evaluated on both engines, and the
example project's tables, which use the others, are compared between engines):

- ISO day of week (`isodow`) and DuckDB's `dayofweek` (0 = Sunday): sqlglot writes
  `(dayofweek(x) % 7) + 1` and `dayofweek(x)`, both off by days on Spark;
- `date_diff('month' | 'quarter' | 'year', a, b)` counts calendar boundaries in DuckDB and
  whole elapsed units in Spark; `'day'` counts date boundaries (timestamps too);
- `isfinite` has no Spark function; `unnest(...)` inside a cast is a generator in an
  expression; a named window with its own frame (`over (w rows between ...)`) is not
  accepted; `* exclude (...)` is DuckDB's (expanded from the input columns);
  `json_remove(to_json(<row>), '$.k')` becomes `to_json(struct(<columns but k>))`, nulls kept;
- `$name` parameters become typed literals; `schema.table` becomes the temporary view the
  build registered for it (`relation`).

A construct with no faithful translation is a `Problem` naming its line and column: the
build refuses the model before anything runs (`wh plan --engine spark` lists them all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlglot import exp, parse_one
from sqlglot.errors import ParseError

READ = "duckdb"
WRITE = "spark"
# date_diff units whose DuckDB meaning (boundaries crossed, or whole days/weeks) is rewritten
DATE_DIFF_UNITS = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True)
class Problem:
    """A construct of a model's SQL that Spark cannot compute with DuckDB's meaning."""

    construct: str
    reason: str
    line: int | None
    column: int | None


class Untranslatable(Exception):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.construct}: {p.reason}" for p in self.problems))


Relation = Callable[[str, str], str]  # (schema, table) -> Spark view name; schema "" for `this`
# (schema, table) -> the relation's columns: (name, DuckDB type, or None when not known)
Columns = Callable[[str, str], Sequence[tuple[str, str | None]]]


def _at(node: exp.Expression) -> tuple[int | None, int | None]:
    for candidate in (node, *node.find_all(exp.Identifier, exp.Literal)):
        meta = candidate.meta
        if "line" in meta:
            column = meta.get("col")
            start = meta.get("start")
            end = meta.get("end")
            if column is not None and start is not None and end is not None:
                column = column - (end - start)  # sqlglot marks the token's last column
            return meta["line"], column
    return None, None


def _source_text(sql: str, line: int, column: int) -> str | None:
    """The construct as written: from its first token to its closing parenthesis."""
    lines = sql.splitlines()
    if not 0 < line <= len(lines) or column < 1:
        return None
    rest = "\n".join([lines[line - 1][column - 1 :], *lines[line:]])
    depth = 0
    for i, char in enumerate(rest):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return " ".join(rest[: i + 1].split())
    return None


def _problem(node: exp.Expression, reason: str, sql: str = "") -> Problem:
    line, column = _at(node)
    text = (_source_text(sql, line, column) if line and column else None) or node.sql(READ)
    return Problem(text if len(text) <= 80 else text[:77] + "...", reason, line, column)


def _literal(value: Any) -> exp.Expression:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if isinstance(value, datetime):
        return exp.cast(
            exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMPNTZ
        )
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.DATE)
    return exp.Literal.string(str(value))


def _unit(node: exp.Expression) -> str:
    unit = node.args.get("unit")
    return unit.name.lower() if unit is not None else "day"


def _date_diff(node: exp.DateDiff) -> exp.Expression:
    """DuckDB's date_diff(unit, start, end): sqlglot puts end in `this`, start in `expression`."""
    end, start, unit = node.this, node.expression, _unit(node)

    def part(name: str, value: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this=name, expressions=[value.copy()])

    def minus(name: str) -> exp.Expression:
        return exp.Sub(this=part(name, end), expression=part(name, start))

    if unit == "day":  # boundaries of days: a timestamp counts by its date
        return exp.Anonymous(
            this="datediff", expressions=[part("to_date", end), part("to_date", start)]
        )
    if unit == "week":  # whole weeks elapsed in both engines
        return exp.Anonymous(
            this="timestampdiff", expressions=[exp.var("WEEK"), start.copy(), end.copy()]
        )
    if unit == "year":
        return exp.paren(minus("year"))
    per, name = (12, "month") if unit == "month" else (4, "quarter")
    return exp.paren(
        exp.Add(
            this=exp.Mul(this=exp.paren(minus("year")), expression=exp.Literal.number(per)),
            expression=exp.paren(minus(name)),
        )
    )


def _inline_windows(select: exp.Select) -> None:
    """`window w as (...)` with `over (w rows between ...)`: Spark takes a named window only
    on its own, so every use gets the definition written out."""
    named = {w.name.lower(): w for w in select.args.get("windows") or []}
    if not named:
        return
    for window in select.find_all(exp.Window):
        if window.parent_select is not select:
            continue
        alias = window.args.get("alias")
        if alias is None or alias.name.lower() not in named:
            continue
        definition = named[alias.name.lower()]
        for key in ("partition_by", "order", "spec"):  # a use's own frame wins
            if definition.args.get(key) and not window.args.get(key):
                window.set(
                    key,
                    definition.args[key].copy()
                    if isinstance(definition.args[key], exp.Expression)
                    else [e.copy() for e in definition.args[key]],
                )
        window.set("alias", None)
    select.set("windows", None)


def _star_columns(
    table: str, select: exp.Select, columns: Columns, ctes: Mapping[str, exp.Expression]
) -> list[str] | None:
    """The columns `t.*` (or `*` over a single relation, `table` "") stands for, where t is a
    table of the build or a CTE/subquery whose projections are named."""
    joins = select.args.get("joins") or []
    if not table and joins:
        return None
    for source in [select.args.get("from_") or select.args.get("from"), *joins]:
        if source is None:
            continue
        node = source.this
        if table and node.alias_or_name.lower() != table.lower():
            continue
        if isinstance(node, exp.Table):
            if node.db:
                return [name for name, _ in columns(node.db, node.name)]
            cte = ctes.get(node.name.lower())
            if cte is not None:
                return _projected(cte, columns, ctes)
            if node.name.lower() == "this":
                return [name for name, _ in columns("", "this")]
        if isinstance(node, exp.Subquery):
            return _projected(node.this, columns, ctes)
    return None


def _projected(
    query: exp.Expression, columns: Columns, ctes: Mapping[str, exp.Expression]
) -> list[str] | None:
    """The column names a query returns, looking through stars; None if unknown."""
    if isinstance(query, exp.Union):
        return _projected(query.this, columns, ctes)
    if not isinstance(query, exp.Select):
        return None
    names: list[str] = []
    for projection in query.expressions:
        star = (
            projection
            if isinstance(projection, exp.Star)
            else (
                projection.this
                if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
                else None
            )
        )
        if star is None:
            names.append(projection.alias_or_name)
            continue
        table = projection.table if isinstance(projection, exp.Column) else ""
        found = _star_columns(table, query, columns, ctes)
        if found is None:
            return None
        excluded = {e.name.lower() for e in star.args.get("except_") or []}
        names.extend(n for n in found if n.lower() not in excluded)
    return names


def _expand_excludes(
    tree: exp.Expression, columns: Columns, problems: list[Problem], source: str
) -> None:
    ctes = {c.alias_or_name.lower(): c.this for c in tree.find_all(exp.CTE)}
    for node in list(tree.find_all(exp.Star)):
        if not node.args.get("except_"):
            continue
        column = node.parent if isinstance(node.parent, exp.Column) else None
        select = node.find_ancestor(exp.Select)
        if select is None:
            continue
        excluded = {e.name.lower() for e in node.args["except_"]}
        names = _star_columns(column.table if column is not None else "", select, columns, ctes)
        if names is None:
            problems.append(
                _problem(
                    node,
                    sql=source,
                    reason="* exclude needs a table or a query whose columns are named",
                )
            )
            continue
        table = column.table if column is not None else None
        expanded = [exp.column(n, table=table) for n in names if n.lower() not in excluded]
        target = column if column is not None else node
        index = select.expressions.index(target)
        select.set(
            "expressions",
            select.expressions[:index] + expanded + select.expressions[index + 1 :],
        )


def _json_of_row(
    node: exp.JSONRemove, columns: Columns, tables: Mapping[str, exp.Table]
) -> exp.Expression | None:
    """json_remove(...(to_json(t), '$.a')..., '$.b') over a table alias t: Spark's to_json of
    a struct of t's other columns, with nulls kept (Spark drops them by default)."""
    removed: list[str] = []
    inner: exp.Expression = node
    while isinstance(inner, exp.JSONRemove):
        for path in inner.expressions:
            if not isinstance(path, exp.Literal) or not path.name.startswith("$."):
                return None
            removed.append(path.name[2:].lower())
        inner = inner.this
    if not (isinstance(inner, exp.Anonymous) and inner.name.lower() == "to_json"):
        return None
    (row,) = inner.expressions or [None]
    if not isinstance(row, exp.Column) or row.table:
        return None
    table = tables.get(row.name.lower())
    if table is None or not table.db:
        return None
    fields = [
        _json_field(exp.column(name, table=row.name), kind, name)
        for name, kind in columns(table.db, table.name)
        if name.lower() not in removed
    ]
    options = exp.Anonymous(
        this="map",
        expressions=[exp.Literal.string("ignoreNullFields"), exp.Literal.string("false")],
    )
    return exp.Anonymous(
        this="to_json", expressions=[exp.Anonymous(this="struct", expressions=fields), options]
    )


def _json_field(value: exp.Expression, kind: str | None, name: str) -> exp.Expression:
    """A struct field that Spark's to_json writes as DuckDB's does: times as DuckDB prints
    them (a space, no trailing zeros; +00 on a UTC timestamp with time zone)."""
    text: exp.Expression = exp.cast(value, exp.DataType.Type.TEXT)
    if kind and kind.upper() in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        text = exp.Anonymous(this="concat", expressions=[text, exp.Literal.string("+00")])
    elif not (kind and kind.upper().startswith("TIMESTAMP")):
        return value
    return exp.Alias(this=text, alias=exp.to_identifier(name))


def _ranking_without_order(window: exp.Window) -> bool:
    ranking = (exp.RowNumber, exp.Rank, exp.DenseRank, exp.Ntile, exp.PercentRank, exp.CumeDist)
    return (
        isinstance(window.this, ranking)
        and not window.args.get("order")
        and not (window.args.get("alias"))
    )


def rewrite(
    tree: exp.Expression,
    params: Mapping[str, Any],
    relation: Relation,
    columns: Columns,
    source: str = "",
) -> tuple[exp.Expression, list[Problem]]:
    """The query rewritten for Spark (a copy) and what could not be; `source` is the text it
    was parsed from (problems quote it)."""
    problems: list[Problem] = []
    tree = tree.copy()
    _expand_excludes(tree, columns, problems, source)
    for select in list(tree.find_all(exp.Select)):
        _inline_windows(select)
    aliases: dict[str, exp.Table] = {}
    for table in tree.find_all(exp.Table):
        if table.db:
            aliases[table.alias_or_name.lower()] = table

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name:
            name = node.name.lower()
            if name not in params:
                problems.append(_problem(node, sql=source, reason=f"no value for ${name}"))
                return node
            return _literal(params[name])
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            schema = node.db
            is_this = not schema and node.name.lower() == "this" and not node.args.get("catalog")
            if schema or is_this:
                alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name))
                return exp.Table(
                    this=exp.to_identifier(relation(schema, node.name)), alias=alias.copy()
                )
            return node
        if isinstance(node, exp.DayOfWeekIso):  # 1 = Monday ... 7 = Sunday
            return exp.paren(
                exp.Add(
                    this=exp.Anonymous(this="weekday", expressions=[node.this.copy()]),
                    expression=exp.Literal.number(1),
                )
            )
        if isinstance(node, exp.DayOfWeek):  # DuckDB: 0 = Sunday; Spark's dayofweek: 1 = Sunday
            return exp.paren(
                exp.Sub(
                    this=exp.Anonymous(this="dayofweek", expressions=[node.this.copy()]),
                    expression=exp.Literal.number(1),
                )
            )
        if isinstance(node, exp.DateDiff):
            if _unit(node) not in DATE_DIFF_UNITS:
                problems.append(
                    _problem(
                        node,
                        sql=source,
                        reason=f"date_diff('{_unit(node)}', ...) has no Spark equivalent "
                        "with DuckDB's meaning; use day, week, month, quarter or year",
                    )
                )
                return node
            return _date_diff(node)
        if isinstance(node, exp.Anonymous) and node.name.lower() == "isfinite":
            (value,) = node.expressions
            # NaN sorts above infinity in Spark, so it is not below it; null stays null
            return exp.paren(
                exp.LT(
                    this=exp.Abs(this=value.copy()),
                    expression=exp.cast(exp.Literal.string("Infinity"), exp.DataType.Type.DOUBLE),
                )
            )
        if isinstance(node, exp.Cast) and isinstance(node.this, exp.Explode | exp.Unnest):
            # cast(unnest(list) as T): Spark takes no generator inside an expression; the
            # list is cast instead, element by element
            generator = node.this
            inner = (
                generator.this
                if isinstance(generator, exp.Explode)
                else (generator.expressions[0] if generator.expressions else None)
            )
            if inner is None:
                return node
            to = exp.DataType(
                this=exp.DataType.Type.ARRAY, expressions=[node.to.copy()], nested=True
            )
            return exp.Explode(this=exp.Cast(this=inner.copy(), to=to))
        if isinstance(node, exp.JSONRemove) and not isinstance(node.parent, exp.JSONRemove):
            rewritten = _json_of_row(node, columns, aliases)
            if rewritten is None:
                problems.append(
                    _problem(
                        node,
                        sql=source,
                        reason="json_remove is translated only as "
                        "json_remove(to_json(<table alias>), '$.<column>')",
                    )
                )
                return node
            return rewritten
        if (
            isinstance(node, exp.Anonymous)
            and node.name.lower() == "to_json"
            and not isinstance(node.parent, exp.JSONRemove)
        ):
            problems.append(
                _problem(
                    node,
                    sql=source,
                    reason="to_json formats values differently on Spark (nulls, times, "
                    "numbers); only json_remove(to_json(<table alias>), ...) is translated",
                )
            )
            return node
        if isinstance(node, exp.Window) and _ranking_without_order(node):
            # DuckDB numbers a partition's rows in no defined order; Spark wants an ORDER BY:
            # the partition's own keys (equal on every row of it) keep the order undefined
            keys = [e.copy() for e in node.args.get("partition_by") or []]
            node.set(
                "order",
                exp.Order(
                    expressions=[exp.Ordered(this=k) for k in keys or [exp.Literal.number(1)]]
                ),
            )
            return node
        return node

    # bottom-up: a rewrite copies its operands, which must be rewritten already
    for node in reversed(list(tree.dfs())):
        assert isinstance(node, exp.Expression)
        new = fix(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree, sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def parse(sql: str) -> exp.Expression:
    try:
        tree = parse_one(sql, read=READ)
    except ParseError as exc:
        raise Untranslatable([Problem("query", f"does not parse: {exc}", None, None)]) from None
    assert isinstance(tree, exp.Expression)
    return tree


def translate(
    sql: str,
    params: Mapping[str, Any],
    relation: Relation,
    columns: Columns,
) -> str:
    """Spark SQL computing what `sql` computes in DuckDB; `Untranslatable` if it cannot."""
    tree, problems = rewrite(parse(sql), params, relation, columns, sql)
    if problems:
        raise Untranslatable(problems)
    return tree.sql(dialect=WRITE)


def spark_type(duckdb_type: str) -> str:
    """The Spark type written to Parquet that DuckDB reads back as `duckdb_type` (naive
    timestamps are TIMESTAMP_NTZ; JSON, which Spark cannot mark, is written as text)."""
    built = exp.DataType.build(duckdb_type, dialect=READ)
    for node in built.find_all(exp.DataType):
        if node.this is exp.DataType.Type.JSON:
            node.set("this", exp.DataType.Type.TEXT)
    return built.sql(dialect=WRITE)
