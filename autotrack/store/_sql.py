"""Compile a parsed ``where`` / ``order_by`` (``autotrack._where``) into parameterised SQL.

Every value of the expression travels as a bound parameter; column names are mapped through a fixed
table or bound as keys, so no text the user typed ever becomes SQL. The semantics are those of the
documented query language: a missing param/metric/tag is NULL, a comparison with NULL is false (and
``not`` of it true: two-valued logic, as in a filtered table), numbers compare as numbers, text as
text, ``like`` is case-insensitive with ``%`` and ``_``.

A :class:`Dialect` supplies the few expressions that differ between SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import QuerySyntaxError

#: Columns of the runs table people filter and sort on, besides params.*, metrics.* and tags.*.
BASE_COLUMNS = ("id", "name", "experiment", "status", "start", "end", "duration", "parent_id")


#: base columns the schema declares NOT NULL
NOT_NULL_COLUMNS = frozenset({"id", "name", "experiment", "start", "status"})


class Dialect:
    """SQLite flavour; PostgreSQL overrides what differs."""

    placeholder = "?"

    def crashed_in(self, ids_placeholder: str) -> str:
        return f"r.id IN (SELECT value FROM json_each({ids_placeholder}))"

    def id_list(self, ids: list[str]) -> Any:
        """How a list of run ids is bound for :meth:`crashed_in` (SQLite: JSON text)."""
        import json

        return json.dumps(ids)

    def param_value(self, key_ph: str, of: Any = None) -> str:
        """A run's param ``key`` (JSON text); ``of``: a function of the SQL of the value, applied
        inside the subquery (see :meth:`param_num_of`)."""
        value = "p.value" if of is None else of("p.value")
        return f"(SELECT {value} FROM params p WHERE p.run_id = r.id AND p.key = {key_ph})"

    def metric_value(self, key_ph: str) -> str:
        return f"(SELECT m.last FROM metric_keys m WHERE m.run_id = r.id AND m.key = {key_ph})"

    def metric_stat(self, key_ph: str, stat: str) -> str:
        column = {"min": "m.min_value", "max": "m.max_value"}[stat]
        return f"(SELECT {column} FROM metric_keys m WHERE m.run_id = r.id AND m.key = {key_ph})"

    def tag_value(self, key_ph: str) -> str:
        return f"(SELECT t.value FROM tags t WHERE t.run_id = r.id AND t.key = {key_ph})"

    # Params are JSON text; tags text; metrics REAL. These turn them into a number or text.
    def param_num(self, expr: str) -> str:
        # numbers, the common case, are converted by SQLite itself; the rest ("1e-3" as a string,
        # NaN, Infinity: not JSON to SQLite) by at_num_json
        return (f"(SELECT CASE WHEN json_valid(v) THEN CASE json_type(v) WHEN 'integer' THEN CAST(v AS REAL) "
                f"WHEN 'real' THEN CAST(v AS REAL) WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 WHEN 'null' THEN NULL "
                f"ELSE at_num_json(v) END ELSE at_num_json(v) END FROM (SELECT {expr} AS v))")

    def param_text(self, expr: str) -> str:
        return f"at_text_json({expr})"

    def param_num_of(self, make: Any) -> str:
        """``param_num`` of the param ``make`` builds (``make(of)``: :meth:`param_value`)."""
        return self.param_num(make())

    def param_text_of(self, make: Any) -> str:
        return self.param_text(make())

    def text_num(self, expr: str) -> str:
        return f"at_num_text({expr})"

    def like(self, expr: str, ph: str) -> str:
        return f"({expr} LIKE {ph})"

    def truth(self, expr: str) -> str:
        """A condition that is false (not NULL) when ``expr`` is NULL."""
        return f"coalesce({expr}, 0)"

    def bool_literal(self, value: bool) -> str:
        return "1" if value else "0"

    def nulls_last(self, make: Any, direction: str) -> list[str]:
        """ORDER BY terms for ``make()`` with missing values last whatever the direction: one
        evaluation of it with NULLS LAST (SQLite 3.30+; a metric's subquery per run: 0.34 ->
        0.20 s for 100,000 runs), two before."""
        import sqlite3

        if sqlite3.sqlite_version_info >= (3, 30, 0):
            return [f"{make()} {direction} NULLS LAST"]
        return [f"({make()} IS NULL)", f"{make()} {direction}"]

    def parent_null_test(self) -> str:
        """``parent_id`` in an ``is null`` test. SQLite without ANALYZE statistics takes the parent
        index for it, although most runs are top-level: every run is then read and sorted for a
        page of 50 (0.3 s at 100,000 runs). The unary ``+`` keeps the term off that index, so the
        start-time index gives the page in order; ``parent_id = 'x'`` still uses it."""
        return "+r.parent_id"


class Compiled:
    def __init__(self, sql: str, args: list[Any]) -> None:
        self.sql = sql
        self.args = args


class Compiler:
    """Build the pieces of one runs query. ``crashed`` are ids of runs whose stored status is
    ``running`` but whose owner is gone: ``status`` reads ``crashed`` for them."""

    def __init__(self, dialect: Dialect, crashed: Sequence[str] = ()) -> None:
        self.d = dialect
        self.args: list[Any] = []
        self.crashed = list(crashed)

    def bind(self, value: Any) -> str:
        self.args.append(value)
        return self.d.placeholder

    # -- columns -----------------------------------------------------------------------------

    def status_expr(self) -> str:
        if not self.crashed:
            return "r.status"
        return f"(CASE WHEN {self.d.crashed_in(self.bind(self.d.id_list(self.crashed)))} THEN 'crashed' ELSE r.status END)"

    def column(self, name: str) -> tuple[Any, str]:
        """``(make, kind)``: ``make()`` writes the column's SQL expression, binding its key anew each
        time it is used; kind is one of ``text``, ``num``, ``param``, ``tag``."""
        base = {
            "id": ("r.id", "text"),
            "name": ("r.name", "text"),
            "experiment": ("e.name", "text"),
            "start": ("r.start_time", "num"),
            "end": ("r.end_time", "num"),
            "duration": ("(r.end_time - r.start_time)", "num"),
            "parent_id": ("r.parent_id", "text"),
            "note": ("r.note", "text"),
        }
        if name in base:
            sql, kind = base[name]
            return (lambda: sql), kind
        if name == "status":
            return self.status_expr, "text"
        stat = metric_stat_column(name)
        if stat is not None:
            fn, key = stat
            return (lambda: self.d.metric_stat(self.bind(key), fn)), "num"
        prefix, _, key = name.partition(".")
        if prefix == "metrics" and key:
            return (lambda: self.d.metric_value(self.bind(key))), "num"
        if prefix == "tags" and key:
            return (lambda: self.d.tag_value(self.bind(key))), "tag"
        if prefix == "params" and key:
            return (lambda of=None: self.d.param_value(self.bind(key), of)), "param"
        # A bare name is a param: `lr < 0.01`, `model.depth = 3`.
        return (lambda of=None: self.d.param_value(self.bind(name), of)), "param"

    def as_num(self, make: Any, kind: str) -> str:
        if kind == "param":
            return self.d.param_num_of(make)
        if kind in ("tag", "text"):
            return self.d.text_num(make())
        return make()

    def as_text(self, make: Any, kind: str) -> str:
        if kind == "param":
            return self.d.param_text_of(make)
        if kind == "num":
            return f"CAST({make()} AS TEXT)"
        return make()

    # -- where -------------------------------------------------------------------------------

    def where(self, node: tuple[Any, ...]) -> str:
        """Iterative over and/or chains (a thousand ``or`` terms must not exhaust the stack)."""
        kind = node[0]
        if kind in ("and", "or"):
            parts = []
            stack = [node]
            while stack:
                current = stack.pop()
                if current[0] == kind:
                    stack.append(current[2])
                    stack.append(current[1])
                else:
                    parts.append(self.where(current))
            return "(" + f" {kind.upper()} ".join(parts) + ")"
        if kind == "not":
            return f"(NOT {self.where(node[1])})"
        expr, col_kind = self.column(node[1])
        if kind in ("isnull", "notnull"):
            sql = self.d.parent_null_test() if node[1] == "parent_id" else expr()
            return f"({sql} IS {'NOT ' if kind == 'notnull' else ''}NULL)"
        if kind == "in":
            terms = [self._compare(expr, col_kind, "==", value) for value in node[2]]
            return "(" + " OR ".join(terms) + ")" if terms else "(1 = 0)"
        if kind == "like":
            return self.d.truth(self.d.like(self.as_text(expr, col_kind), self.bind(node[2])))
        if kind == "cmp":
            return self._compare(expr, col_kind, node[2], node[3])
        raise QuerySyntaxError("where", str(node), "unknown expression")

    def _compare(self, expr: Any, kind: str, op: str, value: Any) -> str:
        sql_op = {"==": "=", "!=": "<>"}.get(op, op)
        if op not in ("==", "!=", "<", "<=", ">", ">="):
            raise QuerySyntaxError("where", op, "use one of = != < <= > >=")
        if isinstance(value, bool):
            return self.d.truth(f"({self.as_num(expr, kind)} {sql_op} {self.d.bool_literal(value)})")
        if isinstance(value, (int, float)):
            return self.d.truth(f"({self.as_num(expr, kind)} {sql_op} {self.bind(float(value))})")
        if value is None:
            return f"({expr()} IS {'NOT ' if op == '!=' else ''}NULL)"
        return self.d.truth(f"({self.as_text(expr, kind)} {sql_op} {self.bind(str(value))})")

    # -- order by ----------------------------------------------------------------------------

    def order(self, order: Sequence[tuple[str, bool]]) -> str:
        terms = []
        for column, ascending in order:
            expr, kind = self.column(column)
            direction = "ASC" if ascending else "DESC"
            if kind in ("param", "tag"):
                terms.append(f"({expr()} IS NULL)")  # missing values last, whatever the direction
                terms.append(f"({self.as_num(expr, kind)} IS NULL)")  # numbers before text
                terms.append(f"{self.as_num(expr, kind)} {direction}")
                terms.append(f"{self.as_text(expr, kind)} {direction}")
            elif column in NOT_NULL_COLUMNS:
                # no null test: it would keep the store from walking its index and stopping at the
                # page (0.3 s instead of 0.4 ms for a page of 100,000 runs)
                terms.append(f"{expr()} {direction}")
            else:
                terms.extend(self.d.nulls_last(expr, direction))
        terms.append("r.start_time DESC")
        terms.append("r.id")
        return ", ".join(terms)


def metric_stat_column(name: str) -> tuple[str, str] | None:
    """``"min(metrics.val/loss)"`` -> ``("min", "val/loss")``; None for any other column."""
    if name[:4] in ("min(", "max(") and name.endswith(")") and name[4:].startswith("metrics."):
        return name[:3], name[4 + len("metrics."):-1]
    return None


def referenced_columns(node: tuple[Any, ...] | None) -> list[str]:
    """The column names an expression mentions (for 'no such column' hints)."""
    out: list[str] = []
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if current[0] in ("and", "or"):
            stack.extend((current[1], current[2]))
        elif current[0] == "not":
            stack.append(current[1])
        else:
            out.append(current[1])
    return out


# -- SQLite functions the compiled SQL calls ---------------------------------------------------


def _num_json(text: str | None) -> float | None:
    if text is None:
        return None
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return None
    return _num(value)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text_json(text: str | None) -> str | None:
    if text is None:
        return None
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return text
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def register_sqlite_functions(conn: Any) -> None:
    conn.create_function("at_num_json", 1, _num_json, deterministic=True)
    conn.create_function("at_text_json", 1, _text_json, deterministic=True)
    conn.create_function("at_num_text", 1, _num, deterministic=True)
