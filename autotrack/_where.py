"""A small parser for ``where`` and ``order_by`` expressions over the runs table.

Grammar (case-insensitive keywords)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | atom
    atom    := "(" expr ")" | column OP literal | column "is" ["not"] "null"
             | column ["not"] "in" "(" literal ("," literal)* ")"
             | column ["not"] "like" string
    OP      := = == != <> < <= > >=
    column  := name like params.lr or metrics.val/rmse, or `any text` in backticks,
               or min(metrics.KEY) / max(metrics.KEY): the lowest / highest value logged
    literal := number | 'text' | "text" | true | false | null

The parsed expression is evaluated against a pandas DataFrame column by column; nothing is ever
passed to ``eval``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import QuerySyntaxError

if TYPE_CHECKING:
    import pandas as pd

_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<num>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)(?![\w./-]))
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<tick>`[^`]+`)
    | (?P<agg>(?:min|max|MIN|MAX|Min|Max)\(\s*metrics\.[^()\s]+\s*\))
    | (?P<op><=|>=|==|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<name>[A-Za-z_][\w.:/\-\[\]@]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "like", "true", "false", "asc", "desc", "none"}


@dataclass
class _Tok:
    kind: str
    text: str
    value: Any


def _tokenize(text: str, argument: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise QuerySyntaxError(argument, text, f"cannot read {text[pos:pos + 20]!r} at character {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind == "num":
            tokens.append(_Tok("lit", raw, float(raw) if any(c in raw.lower() for c in ".eninf") else int(raw)))
        elif kind == "str":
            tokens.append(_Tok("lit", raw, re.sub(r"\\(.)", r"\1", raw[1:-1])))
        elif kind == "tick":
            tokens.append(_Tok("col", raw, raw[1:-1]))
        elif kind == "agg":  # min(metrics.val/loss): the lowest value ever logged, from the key's stats
            fn, _, inner = raw.partition("(")
            tokens.append(_Tok("col", raw, f"{fn.lower()}({inner[:-1].strip()})"))
        elif kind == "name" and raw.lower() in _KEYWORDS:
            low = raw.lower()
            if low in ("true", "false"):
                tokens.append(_Tok("lit", raw, low == "true"))
            elif low in ("null", "none"):
                tokens.append(_Tok("null", raw, None))
            else:
                tokens.append(_Tok("kw", low, low))
        elif kind == "name":
            tokens.append(_Tok("col", raw, raw))
        else:
            tokens.append(_Tok(kind, raw, raw))
    return tokens


#: Limits of one expression: beyond them a clear QuerySyntaxError, never a RecursionError (the
#: parser, the evaluator and the SQL compiler all walk the tree recursively).
MAX_TERMS = 256
MAX_DEPTH = 64


class _Parser:
    def __init__(self, text: str, argument: str) -> None:
        self.text = text
        self.argument = argument
        self.tokens = _tokenize(text, argument)
        self.i = 0
        self.terms = 0
        self.depth = 0
        ops = sum(1 for t in self.tokens if t.kind == "kw" and t.value in ("and", "or"))
        if ops >= MAX_TERMS:
            raise QuerySyntaxError(
                argument, _short(text), f"at most {MAX_TERMS} comparisons joined by and/or (got {ops + 1}); "
                "for many values of one column use 'in', e.g. \"params.seed in (1, 2, 3)\""
            )

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(
                self.argument, _short(self.text),
                f"parentheses and 'not' nest at most {MAX_DEPTH} levels deep; write the expression flatter",
            )

    def error(self, what: str) -> QuerySyntaxError:
        return QuerySyntaxError(
            self.argument,
            self.text,
            f"{what}. Write comparisons joined by and/or, e.g. \"params.lr < 0.01 and metrics.val/rmse < 0.5\"",
        )

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise self.error("the expression ends too early")
        self.i += 1
        return tok

    def accept_kw(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "kw" and tok.value == word:
            self.i += 1
            return True
        return False

    def parse(self) -> tuple[Any, ...]:
        node = self.or_()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return node

    def or_(self) -> tuple[Any, ...]:
        node = self.and_()
        while self.accept_kw("or"):
            node = ("or", node, self.and_())
        return node

    def and_(self) -> tuple[Any, ...]:
        node = self.not_()
        while self.accept_kw("and"):
            node = ("and", node, self.not_())
        return node

    def not_(self) -> tuple[Any, ...]:
        if self.accept_kw("not"):
            self.deeper()
            node = ("not", self.not_())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> tuple[Any, ...]:
        tok = self.take()
        if tok.kind == "punct" and tok.text == "(":
            self.deeper()
            node = self.or_()
            close = self.take()
            if close.text != ")":
                raise self.error("a '(' is not closed")
            self.depth -= 1
            return node
        if tok.kind != "col":
            raise self.error(f"expected a column name such as params.lr, got {tok.text!r}")
        column = tok.value
        if self.accept_kw("is"):
            negate = self.accept_kw("not")
            if self.take().kind != "null":
                raise self.error("'is' must be followed by null or not null")
            return ("notnull" if negate else "isnull", column)
        negate = self.accept_kw("not")
        if self.accept_kw("in"):
            if self.take().text != "(":
                raise self.error("'in' takes a list in parentheses")
            values = []
            while True:
                lit = self.take()
                if lit.kind != "lit":
                    raise self.error(f"expected a value in the list, got {lit.text!r}")
                values.append(lit.value)
                sep = self.take()
                if sep.text == ")":
                    break
                if sep.text != ",":
                    raise self.error("separate list values with commas")
            node: tuple[Any, ...] = ("in", column, values)
            return ("not", node) if negate else node
        if self.accept_kw("like"):
            lit = self.take()
            if lit.kind != "lit" or not isinstance(lit.value, str):
                raise self.error("'like' takes a quoted pattern such as 'resnet%'")
            node = ("like", column, lit.value)
            return ("not", node) if negate else node
        if negate:
            raise self.error("'not' after a column must be followed by in or like")
        op = self.take()
        if op.kind != "op":
            raise self.error(f"expected a comparison after {column!r}, got {op.text!r}")
        lit = self.take()
        if lit.kind == "null":
            return ("isnull", column) if op.text in ("=", "==") else ("notnull", column)
        if lit.kind != "lit":
            raise self.error(f"expected a value after {op.text!r}, got {lit.text!r}")
        return ("cmp", column, {"=": "==", "<>": "!="}.get(op.text, op.text), lit.value)


def _short(text: str) -> str:
    return text if len(text) <= 200 else f"{text[:200]}... ({len(text)} characters)"


def parse_where(text: str) -> tuple[Any, ...]:
    if not isinstance(text, str) or not text.strip():
        raise QuerySyntaxError("where", text, "pass a non-empty expression such as \"params.lr < 0.01\"")
    return _Parser(text, "where").parse()


def parse_order_by(text: str | list[str]) -> list[tuple[str, bool]]:
    """``"metrics.val/rmse DESC, start"`` -> ``[("metrics.val/rmse", False), ("start", True)]``."""
    parts = text if isinstance(text, list) else [p for p in _split_commas(text)]
    out = []
    for part in parts:
        tokens = _tokenize(part.strip(), "order_by")
        if not tokens or tokens[0].kind != "col" or len(tokens) > 2:
            raise QuerySyntaxError("order_by", text, 'write a column with an optional ASC/DESC, e.g. "metrics.val/rmse DESC"')
        ascending = True
        if len(tokens) == 2:
            if tokens[1].kind != "kw" or tokens[1].value not in ("asc", "desc"):
                raise QuerySyntaxError("order_by", text, f"expected ASC or DESC after {tokens[0].value!r}")
            ascending = tokens[1].value == "asc"
        out.append((tokens[0].value, ascending))
    return out


def _split_commas(text: str) -> list[str]:
    parts, depth, current, quote = [], 0, "", ""
    for ch in text:
        if quote:
            current += ch
            if ch == quote:
                quote = ""
            continue
        if ch in "`'\"":
            quote = ch
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def evaluate(node: tuple[Any, ...], frame: pd.DataFrame) -> pd.Series:
    """Evaluate a parsed expression to a boolean mask over ``frame``'s rows."""
    import pandas as pd

    kind = node[0]
    if kind == "and":
        return evaluate(node[1], frame) & evaluate(node[2], frame)
    if kind == "or":
        return evaluate(node[1], frame) | evaluate(node[2], frame)
    if kind == "not":
        return ~evaluate(node[1], frame)
    column = _column(frame, node[1])
    if kind == "isnull":
        return column.isna()
    if kind == "notnull":
        return column.notna()
    if kind == "in":
        return column.isin(node[2]).fillna(False).astype(bool)
    if kind == "like":
        pattern = "^" + re.escape(node[2]).replace("%", ".*").replace("_", ".") + "$"
        return column.astype("string").str.match(pattern, case=False).fillna(False).astype(bool)
    op, value = node[2], node[3]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        column = pd.to_numeric(column, errors="coerce")
    elif isinstance(value, str):
        column = column.astype("string")
    result = {
        "==": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
    }[op]()
    return pd.Series(result, index=frame.index).fillna(False).astype(bool)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    import pandas as pd

    if name in frame.columns:
        return frame[name]
    if "." not in name and f"params.{name}" in frame.columns:
        return frame[f"params.{name}"]
    return pd.Series([None] * len(frame), index=frame.index, dtype="object")
