"""The seam holds: no SQL, no sqlite3 and no connection outside ``autotrack/store/``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "autotrack"
SQL = re.compile(r"\b(SELECT\s+.+\s+FROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE|PRAGMA\s+\w+)\b",
                 re.IGNORECASE | re.DOTALL)


def _outside_store() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "store" not in p.relative_to(PACKAGE).parts[:1]]


def test_no_sql_or_sqlite_outside_the_store_package():
    offenders = []
    for path in _outside_store():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                if any(n == "sqlite3" or n.startswith("sqlite3.") for n in names):
                    offenders.append(f"{path}:{node.lineno}: imports sqlite3")
            elif isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany", "executescript", "cursor"):
                offenders.append(f"{path}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                offenders.append(f"{path}:{node.lineno}: SQL text {node.value[:40]!r}")
    assert offenders == []


def test_get_store_hands_out_a_backend_not_a_connection(tmp_path):
    import autotrack
    from autotrack.store import Backend

    store = autotrack.set_store(tmp_path / "s")
    assert isinstance(store, Backend)
    assert not any(hasattr(store, name) for name in ("connection", "reader", "execute"))
