"""Print the import edges between the core, the integration SDK and the integrations.

    python tools/import_graph.py          # exits 1 if an integration imports a private core module

Layers: ``core`` (``autotrack`` and ``autotrack._*``), ``sdk`` (``autotrack.integrations.base``),
``integration`` (every other module under ``autotrack/integrations``). Allowed: integration -> sdk,
integration -> the public ``autotrack`` package, integration -> integration, sdk -> core. An
integration importing ``autotrack._anything`` is the edge this check exists to stop.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "autotrack"
SDK = "autotrack.integrations.base"


def module_name(path: Path) -> str:
    try:
        parts = list(path.resolve().relative_to(ROOT).with_suffix("").parts)
    except ValueError:  # a file outside the repository (tests): its own name
        parts = [path.stem]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(name: str) -> str:
    if name == SDK:
        return "sdk"
    if name == "autotrack.integrations" or name.startswith("autotrack.integrations."):
        return "integration"
    return "core"


def imports(path: Path) -> list[tuple[str, int]]:
    """Every ``autotrack...`` module ``path`` imports (also inside functions), with line numbers;
    ``from autotrack import _x`` counts as importing ``autotrack._x``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "autotrack"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "autotrack":
                continue
            found.append((target, node.lineno))
            for alias in node.names:  # from autotrack import _run / from autotrack.integrations import torch
                if alias.name.startswith("_") and alias.name != "__version__":
                    found.append((f"{target}.{alias.name}", node.lineno))
    return found


def private_core(name: str) -> bool:
    return layer(name) == "core" and any(part.startswith("_") for part in name.split(".")[1:])


def edges() -> list[tuple[str, str, str, int]]:
    """(importer, imported, importer's path, line) for every autotrack module."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = module_name(path)
        for target, line in imports(path):
            out.append((src, target, str(path.relative_to(ROOT)), line))
    return out


def violations() -> list[str]:
    return [f"{path}:{line}: {src} imports the private core module {target} (use autotrack.integrations.base)"
            for src, target, path, line in edges()
            if layer(src) == "integration" and private_core(target)]


def main() -> int:
    seen = set()
    for src, target, _, _ in edges():
        key = (layer(src), layer(target), src, target)
        if key[0] == "core" and key[1] == "core" or key in seen:
            continue
        seen.add(key)
    for a, b, src, target in sorted(seen):
        print(f"{a:>11} -> {b:<11} {src} -> {target}")
    bad = violations()
    for line in bad:
        print("FORBIDDEN", line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
