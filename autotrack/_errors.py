"""The one exception hierarchy of autotrack.

Every error keeps the offending value as an attribute, and its message names the argument, the
value and the fix.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AutotrackError",
    "InvalidArgumentError",
    "RunEndedError",
    "RunNotFoundError",
    "RunLockedError",
    "StoreError",
    "StoreVersionError",
    "UnsafeArtifactNameError",
    "QuerySyntaxError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "AliasConflictError",
    "RunInUseError",
]


class AutotrackError(Exception):
    """Base class of every error autotrack raises on purpose."""


class InvalidArgumentError(AutotrackError, ValueError):
    """An argument has the wrong type or value."""

    def __init__(self, argument: str, value: Any, fix: str) -> None:
        self.argument = argument
        self.value = value
        self.fix = fix
        try:
            shown = repr(value)
        except Exception as exc:  # noqa: BLE001 - an error about an odd object must still be raised
            shown = f"<unrepresentable {type(value).__qualname__}: {type(exc).__name__}>"
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"invalid {argument}={shown}: {fix}")


class UnsafeArtifactNameError(InvalidArgumentError):
    """An artifact name would escape the store (``../x``, an absolute path, a NUL byte)."""


class RunEndedError(AutotrackError):
    """Something was logged to a run that has already ended."""

    def __init__(self, run_id: str, status: str, action: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(
            f"cannot {action}: run {run_id} already ended with status {status!r}. "
            "Start a new run with autotrack.start_run(), or resume this one with "
            f"autotrack.start_run(resume={run_id!r})."
        )


class RunNotFoundError(AutotrackError, KeyError):
    """No run matches the given id or prefix."""

    def __init__(self, run_id: str, candidates: list[str], reason: str = "no run matches") -> None:
        self.run_id = run_id
        self.candidates = candidates
        hint = f" Closest ids: {', '.join(candidates)}." if candidates else ""
        super().__init__(f"{reason} id {run_id!r}.{hint} List runs with `autotrack runs`.")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RunLockedError(AutotrackError):
    """A run is already open for writing in another live process."""

    def __init__(self, run_id: str, pid: int, host: str) -> None:
        self.run_id = run_id
        self.pid = pid
        self.host = host
        super().__init__(
            f"run {run_id} is open for writing by process {pid} on {host}. "
            "Wait for it to end, or log to a new run."
        )


class StoreError(AutotrackError):
    """The store cannot be opened or written."""


class StoreVersionError(StoreError):
    """The store was written by a newer autotrack than this one."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"the store at {path} has schema version {found}, but this autotrack reads up to "
            f"version {supported}. Upgrade autotrack (pip install -U autotrack) to open it."
        )


class QuerySyntaxError(InvalidArgumentError):
    """A ``where`` or ``order_by`` expression could not be parsed."""


class MissingDependencyError(AutotrackError, ImportError):
    """An optional package needed for this feature is not installed."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs {package}, which is not installed. "
            f"Install it with: pip install 'autotrack-ml[{extra}]'"
        )


class ModelNotFoundError(AutotrackError, KeyError):
    """No registered model, version or alias matches."""

    def __init__(self, name: str, version: int | str | None, message: str) -> None:
        self.name = name
        self.version = version
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class AliasConflictError(AutotrackError):
    """An alias moved while a rollback (or a checked move) was deciding where to put it."""

    def __init__(self, name: str, alias: str, expected: int | None, found: int | None) -> None:
        self.name = name
        self.alias = alias
        self.expected = expected
        self.found = found
        super().__init__(
            f"alias {alias!r} of model {name!r} was moved by someone else meanwhile: it points at version "
            f"{found}, not {expected}. Look at `autotrack models show {name}` and try again."
        )


class RunInUseError(AutotrackError):
    """A run cannot be deleted because registered model versions refer to it."""

    def __init__(self, run_id: str, versions: list[tuple[str, int]]) -> None:
        self.run_id = run_id
        self.versions = versions
        named = ", ".join(f"model {name!r} version {version}" for name, version in versions)
        super().__init__(
            f"run {run_id} cannot be deleted: {named} refer(s) to it. Pass force=True "
            "(`autotrack rm --force`) to delete the run anyway; the version records and their model "
            "files are kept and marked as having lost their run."
        )
