"""The function inside a decorator's wrapper, as an attribute ``base.patch`` can replace and undo.

scikit-learn's public functions (``cross_validate``, ``learning_curve``, ...) are wrappers made by
``validate_params``, and ``xgboost.train``/``xgboost.cv`` by ``_deprecate_positional_args``; both
keep the decorated function in a closure cell named ``func``. Users bind the wrapper itself
(``from sklearn.model_selection import cross_validate``, often before autolog runs), so replacing
a module attribute misses their calls; replacing the cell's content reaches every reference.
This is a private detail of both frameworks: :func:`inner_slot` returns None when it changes (the
integrations then fall back to patching module attributes), and each integration's suite has a
test that fails when it does.
"""

from __future__ import annotations

from typing import Any

_UNSET = object()


class WrappedSlot:
    """``slot.func`` reads and writes the ``func`` cell of ``wrapper``; deleting it (what
    ``unpatch`` does for an attribute it found no ``__dict__`` entry for) restores the original."""

    def __init__(self, wrapper: Any, cell: Any) -> None:
        object.__setattr__(self, "_cell", cell)
        object.__setattr__(self, "_original", cell.cell_contents)
        object.__setattr__(self, "__name__", getattr(wrapper, "__name__", "wrapped"))

    @property
    def func(self) -> Any:
        return self._cell.cell_contents

    @func.setter
    def func(self, value: Any) -> None:
        self._cell.cell_contents = getattr(value, "__func__", value)  # a staticmethod from patch()

    @func.deleter
    def func(self) -> None:
        self._cell.cell_contents = self._original


_slots: dict[int, WrappedSlot] = {}


def inner_slot(wrapper: Any) -> WrappedSlot | None:
    """The slot of ``wrapper``'s ``func`` cell (one per wrapper), or None when ``wrapper`` is not a
    decorator wrapper of that shape (its ``__wrapped__`` must be the cell's content)."""
    slot = _slots.get(id(wrapper))
    if slot is not None:
        return slot
    code, closure = getattr(wrapper, "__code__", None), getattr(wrapper, "__closure__", None)
    inner = getattr(wrapper, "__wrapped__", _UNSET)
    if code is None or not closure or "func" not in code.co_freevars:
        return None
    cell = closure[code.co_freevars.index("func")]
    try:
        content = cell.cell_contents
    except ValueError:
        return None
    if content is not inner and getattr(content, "__wrapped__", _UNSET) is not inner:
        return None
    slot = _slots[id(wrapper)] = WrappedSlot(wrapper, cell)
    return slot
