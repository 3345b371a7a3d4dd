"""The model registry: named models with numbered versions, aliases, an append-only alias history,
rollback, and loading through each framework's safe loader.

    v = autotrack.register_model("churn", run=run.id, artifact="model.skops")   # -> churn/1, churn/2 ...
    autotrack.set_alias("churn", "champion", v.version, reason="beats v1 on val/auc")
    autotrack.rollback("churn", "champion")            # back to the version it held before
    model = autotrack.load_model("churn@champion")      # or "churn/3", or "churn" (the latest)

Versions are numbered per name by the store (two processes registering at once get distinct
numbers); a version keeps the model's bytes in the store's blob folder, so deleting or changing the
run's files later does not change what a version loads. Every alias move is appended to a history
that no API edits: who moved it (OS user and host), when, from which version to which, and why.

Loading goes through the loader an integration registered for the version's framework
(:func:`register_model_loader`, offered to integrations by ``autotrack.integrations.base``): the
core knows no framework and imports none. The built-in loaders never unpickle unless told to (see
:func:`load_model`). Nothing here runs SQL: the store does (:class:`autotrack.store.Backend`).
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import InvalidArgumentError, MissingDependencyError, ModelNotFoundError, StoreError
from ._run import Run, note_text, store_for, tag_rows
from .store import HOST, AliasMoveRow, Backend, ModelVersionRow, NewModelVersion, SetAlias

if TYPE_CHECKING:
    from ._query import Artifact, RunRecord

__all__ = [
    "AliasMove", "ModelLoader", "ModelVersion", "RegisteredModel", "get_model", "list_models", "load_model",
    "register_model", "register_model_loader", "rollback", "set_alias",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")
StoreArg = Backend | str | os.PathLike[str] | None


# -- what readers get -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasMove:
    """One entry of the alias history (never edited: there is no API that could)."""

    seq: int
    alias: str
    from_version: int | None
    to_version: int
    action: str  # "set" or "rollback"
    reason: str | None
    user: str
    host: str
    time: float


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model. ``run_id`` is its lineage: the run that produced it
    (``version.run()`` reads it, with its code, packages, data fingerprints, seeds and hardware)."""

    name: str
    version: int
    run_id: str
    artifact: str
    sha256: str
    size: int
    framework: str
    format: str | None
    created: float
    tags: dict[str, str]
    description: str | None
    user: str
    host: str
    #: True when the run was deleted with ``force=True`` (the version and its bytes are kept).
    run_deleted: bool
    #: How it loads: format, class, library versions.
    meta: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    _store: Backend | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def signature(self) -> dict[str, Any] | None:
        """The model's ``{"inputs": schema, "outputs": schema}`` as its integration recorded it
        (None for a model stored without one); ``autotrack.check_input(version, X)`` checks data
        against it."""
        from ._signature import recorded

        return recorded(self.meta, "signature")

    @property
    def input_example(self) -> dict[str, Any] | None:
        """The first training rows the model saw, as JSON (secret filter applied), or None."""
        from ._signature import recorded

        return recorded(self.meta, "input_example")

    def run(self) -> RunRecord:
        """The run this version was made from."""
        from ._query import get_run

        if self.run_deleted:
            raise ModelNotFoundError(self.name, self.version, f"the run {self.run_id} of {self.ref} was deleted "
                                     "(with force=True); the version and its model file are kept")
        return get_run(self.run_id, store=self._store)

    def read_bytes(self) -> bytes:
        """The model file's bytes, verified against the version's sha256."""
        store = _store(self._store)
        try:
            data = store.blobs.read(self.sha256)
        except (FileNotFoundError, OSError):
            raise StoreError(f"the model file of {self.ref} ({self.sha256[:12]}) is missing from the store at "
                             f"{store.location}. Run `autotrack doctor --verify`.") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise StoreError(f"the model file of {self.ref} in the store at {store.location} does not match its "
                             f"sha256 {self.sha256}: it was changed or damaged after registration")
        return data


@dataclass(frozen=True)
class RegisteredModel:
    """A model name: its versions (oldest first), its aliases and their whole history."""

    name: str
    versions: list[ModelVersion]
    aliases: dict[str, int]
    history: list[AliasMove]

    @property
    def latest(self) -> ModelVersion:
        return self.versions[-1]

    def version(self, which: int | str) -> ModelVersion:
        """A version by number, or by alias."""
        if isinstance(which, str) and not which.isdigit():
            if which not in self.aliases:
                raise ModelNotFoundError(self.name, which, _no_alias(self.name, which, self.aliases))
            which = self.aliases[which]
        number = int(which)
        for v in self.versions:
            if v.version == number:
                return v
        raise ModelNotFoundError(self.name, number, f"model {self.name!r} has no version {number}; it has versions "
                                 f"1..{self.latest.version}")


# -- registering ------------------------------------------------------------------------------------


def register_model(name: str, run: Run | RunRecord | str | None = None, artifact: str | None = None, *,
                   tags: Mapping[str, Any] | None = None, description: str | None = None,
                   store: StoreArg = None) -> ModelVersion:
    """Register the artifact ``artifact`` of ``run`` as the next version of model ``name``.

    ``run`` is a :class:`Run`, a :class:`RunRecord` or a run id (default: the active run);
    ``artifact`` the name of one of its artifacts (``"model.skops"``, ``"model.ubj"``, a
    checkpoint's file name; default: its newest artifact of kind ``model``). The bytes are kept in
    the store (a checkpoint recorded by reference is copied in), so the version loads the same
    whatever happens to the original file. Returns the new :class:`ModelVersion`.
    """
    name = _check_name(name)
    if tags is not None and not isinstance(tags, Mapping):
        raise InvalidArgumentError("tags", tags, "pass a dict of name -> text, or None")
    if description is not None and not isinstance(description, str):
        raise InvalidArgumentError("description", description, "pass a str, or None")
    record = _run_record(run, store)
    st = record.store
    art = _pick_artifact(record, artifact)
    sha, size = _keep_bytes(st, record, art)
    framework, meta = _describe(art, record)
    tag_json = json.dumps(dict(tag_rows(tags)[0]), ensure_ascii=False) if tags else None
    row = st.register_version(NewModelVersion(
        name, record.id, art.name, sha, size, framework, json.dumps(meta, ensure_ascii=False, default=repr), tag_json,
        note_text(description) if description is not None else None, time.time(), _user(), HOST))
    return _version(st, row, ())


def _run_record(run: Run | RunRecord | str | None, store: StoreArg) -> RunRecord:
    from ._query import RunRecord, get_run
    from ._run import active_run

    if run is None:
        run = active_run()
        if run is None:
            raise InvalidArgumentError("run", None, "pass the run the model comes from: a Run, a RunRecord or a run id")
    if isinstance(run, Run):
        if not run.flush():  # what it logged must be in the store before we read its artifacts
            raise StoreError(f"could not write run {run.id} to the store at {run.store.location}; nothing registered")
        return get_run(run.id, store=run.store)
    if isinstance(run, RunRecord):
        return get_run(run.id, store=run.store)  # re-read: artifacts may have been added since
    if isinstance(run, str):
        return get_run(run, store=store)
    raise InvalidArgumentError("run", run, "pass a Run, a RunRecord or a run id (as shown by `autotrack runs`)")


def _pick_artifact(record: RunRecord, artifact: str | None) -> Artifact:
    live = [a for a in record.artifacts if not a.deleted]
    if artifact is None:
        models = [a for a in live if a.kind == "model"]
        if not models:
            names = ", ".join(sorted({a.name for a in live})) or "none"
            raise InvalidArgumentError("artifact", None, f"run {record.id[:8]} has no artifact of kind 'model'; name "
                                       f"the one to register (its artifacts: {names})")
        return models[-1]
    if not isinstance(artifact, str) or not artifact:
        raise InvalidArgumentError("artifact", artifact, "pass the name of one of the run's artifacts, e.g. 'model.skops'")
    matches = [a for a in live if a.name == artifact]
    if not matches:
        close = difflib.get_close_matches(artifact, [a.name for a in live], n=3, cutoff=0.3)
        gone = any(a.name == artifact for a in record.artifacts)
        why = "that artifact was deleted (a checkpoint ModelCheckpoint removed)" if gone else "no such artifact"
        raise InvalidArgumentError("artifact", artifact, f"run {record.id[:8]} has {why}. "
                                   f"Did you mean {', '.join(map(repr, close)) or 'one of rec.artifacts'}?")
    return matches[-1]


def _keep_bytes(st: Backend, record: RunRecord, art: Artifact) -> tuple[str, int]:
    """The artifact's bytes in the store's blobs, verified against the sha256 the run recorded."""
    if art.stored and art.sha256 and st.blobs.verify(art.sha256):
        return art.sha256, int(art.size or 0)
    source = art.source_path
    if not source or not os.path.isfile(source):
        raise StoreError(f"the bytes of artifact {art.name!r} of run {record.id[:8]} are not in the store and its "
                         f"file {source!r} is gone; nothing registered")
    blob = st.blobs.put_file(source)
    if art.sha256 and blob.sha256 != art.sha256:
        raise StoreError(f"the file {source} of artifact {art.name!r} of run {record.id[:8]} changed after it was "
                         f"logged (sha256 {blob.sha256[:12]}, recorded {art.sha256[:12]}); nothing registered")
    return blob.sha256, blob.size


def _describe(art: Artifact, record: RunRecord) -> tuple[str, dict[str, Any]]:
    """Framework and loading facts of an artifact, from what its integration recorded and the file
    suffixes and formats the registered loaders declare."""
    by_suffix, by_format = _formats()
    given = str(art.metadata.get("format") or "").strip()
    suffix = os.path.splitext(art.name)[1].lower()
    # "torch state_dict" names the format "torch"; without one the file's suffix says
    fmt = given.split()[0] if given else by_suffix.get(suffix, (None, None))[0]
    # what the integration recorded about the file (class, library versions, score, epoch ...)
    meta: dict[str, Any] = {k: v for k, v in art.metadata.items() if k not in ("format", "kind", "path")}
    meta.update(format=fmt, kind=art.kind)
    if suffix in by_suffix and by_suffix[suffix][0] == fmt:
        framework = by_suffix[suffix][1]  # e.g. a checkpoint suffix claimed by its framework
    else:
        framework = by_format.get(fmt or "", "unknown")
    if "class" not in meta:
        try:
            model_class = record.info("model").get("class")
        except Exception:  # noqa: BLE001 - a damaged or absent section: the class stays unknown
            model_class = None
        if model_class:
            meta["class"] = model_class  # so the caller knows which module to build
    return framework, meta


# -- the loaders integrations register --------------------------------------------------------------


@dataclass(frozen=True)
class ModelLoader:
    """How versions of one framework load: ``loader(version, data, *, model, trusted,
    allow_pickle)`` returns the model (a ``"package.module:function"`` string is imported only when
    a version of that framework is loaded). ``formats`` are the format names (an artifact's
    ``format`` metadata) it reads; ``suffixes`` maps a file suffix to the format such files have,
    and claims those files for this framework."""

    framework: str
    loader: Any
    formats: tuple[str, ...] = ()
    suffixes: Mapping[str, str] = field(default_factory=dict)
    #: the ``pip install 'autotrack-ml[EXTRA]'`` that brings what the loader imports
    extra: str | None = None

    def reads(self, fmt: str | None) -> bool:
        return fmt is not None and (fmt in self.formats or fmt in self.suffixes.values())


_loaders: dict[str, ModelLoader] = {}
_loaders_lock = threading.Lock()


def register_model_loader(framework: str, loader: Any, *, formats: tuple[str, ...] | list[str] = (),
                          suffixes: Mapping[str, str] | None = None, extra: str | None = None) -> ModelLoader:
    """Register (or replace) the loader of ``framework``'s registered versions. See :class:`ModelLoader`.
    A loader must never run code from the file (no unpickling unless ``allow_pickle=True``)."""
    if not isinstance(framework, str) or not framework.isidentifier():
        raise InvalidArgumentError("framework", framework, "pass the framework's name, e.g. 'sklearn'")
    if not (callable(loader) or (isinstance(loader, str) and ":" in loader)):
        raise InvalidArgumentError("loader", loader, "pass a function or a 'package.module:function' string")
    if isinstance(formats, str) or not all(isinstance(f, str) and f for f in formats):
        raise InvalidArgumentError("formats", formats, "pass a tuple of format names, e.g. formats=('skops',)")
    suffixes = dict(suffixes or {})
    if not all(isinstance(k, str) and k.startswith(".") and isinstance(v, str) and v for k, v in suffixes.items()):
        raise InvalidArgumentError("suffixes", suffixes, "pass a dict of file suffix -> format, e.g. {'.skops': 'skops'}")
    entry = ModelLoader(framework, loader, tuple(formats), {k.lower(): v for k, v in suffixes.items()}, extra)
    with _loaders_lock:
        _loaders[framework] = entry
    return entry


def _registered_loaders() -> list[ModelLoader]:
    from ._integrations import discover

    discover()  # the built-in integrations and the entry points register their loaders
    with _loaders_lock:
        return list(_loaders.values())


def _formats() -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """suffix -> (format, framework) and format -> framework; the first registration of each wins."""
    by_suffix: dict[str, tuple[str, str]] = {}
    by_format: dict[str, str] = {}
    for entry in _registered_loaders():
        for suffix, fmt in entry.suffixes.items():
            by_suffix.setdefault(suffix, (fmt, entry.framework))
        for fmt in entry.formats:
            by_format.setdefault(fmt, entry.framework)
    return by_suffix, by_format


def _loader_for(version: ModelVersion) -> ModelLoader | None:
    loaders = {e.framework: e for e in _registered_loaders()}
    entry = loaders.get(version.framework)
    if entry is not None and entry.reads(version.format):
        return entry
    framework = _formats()[1].get(version.format or "")
    return loaders.get(framework) if framework else None


# -- aliases --------------------------------------------------------------------------------------


def set_alias(name: str, alias: str, version: int, *, reason: str | None = None, store: StoreArg = None) -> AliasMove | None:
    """Point ``alias`` (``"champion"``, any name) of model ``name`` at ``version``; the move is
    appended to the alias history. Returns it, or None when the alias already pointed there."""
    st = _store(store)
    name, alias = _check_name(name), _check_alias(alias)
    version = _check_version(version)
    _versions_or_fail(st, name)
    row = st.set_alias(SetAlias(name, alias, version, "set", _reason(reason), _user(), HOST, time.time()))
    return None if row is None else _move(row)


def rollback(name: str, alias: str, *, to: int | None = None, reason: str | None = None,
             store: StoreArg = None) -> AliasMove:
    """Move ``alias`` back to the version it held before its current one (a rollback of a
    rollback goes one further back), or to version ``to``. Recorded as a move of action
    ``rollback``. Fails with ``AliasConflictError`` when someone moves the alias meanwhile."""
    st = _store(store)
    name, alias = _check_name(name), _check_alias(alias)
    _versions_or_fail(st, name)
    history = st.alias_history(name, alias)
    if not history:
        raise ModelNotFoundError(name, alias, _no_alias(name, alias, {a.alias: a.version for a in st.model_aliases(name)}))
    held = held_versions(history)
    current = held[-1]
    if to is None:
        if len(held) < 2:
            raise InvalidArgumentError("to", None, f"alias {alias!r} of model {name!r} has held no version before "
                                       f"version {current}; pass to=N to move it to another version")
        target = held[-2]
    else:
        target = _check_version(to, "to")
        if target == current:
            raise InvalidArgumentError("to", to, f"alias {alias!r} of model {name!r} already points at version {to}")
    row = st.set_alias(SetAlias(name, alias, target, "rollback", _reason(reason), _user(), HOST, time.time(),
                                expected=current, check_expected=True))
    assert row is not None  # target != current, checked in the same transaction
    return _move(row)


def held_versions(history: list[AliasMoveRow] | list[AliasMove]) -> list[int]:
    """The versions an alias held, oldest first, with rolled-back moves undone: ``set 1, set 2,
    set 3, rollback`` held ``[1, 2]``; rolling back once more goes to 1."""
    held: list[int] = []
    for move in history:
        if move.action == "rollback" and move.to_version in held:
            del held[len(held) - held[::-1].index(move.to_version):]
        elif move.action == "rollback" and held:
            held[-1] = move.to_version
        else:
            held.append(move.to_version)
    return held


# -- reading --------------------------------------------------------------------------------------


def get_model(name: str, *, store: StoreArg = None) -> RegisteredModel:
    """A registered model: its versions, aliases and alias history."""
    st = _store(store)
    name = _check_name(name)
    rows = _versions_or_fail(st, name)
    aliases = {a.alias: a.version for a in st.model_aliases(name)}
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    versions = [_version(st, row, tuple(by_version.get(row.version, ()))) for row in rows]
    return RegisteredModel(name, versions, aliases, [_move(m) for m in st.alias_history(name)])


def list_models(*, store: StoreArg = None) -> list[RegisteredModel]:
    """Every registered model, by name."""
    st = _store(store)
    if not st.exists():
        return []
    return [get_model(name, store=st) for name in st.model_names()]


def resolve(ref: str | ModelVersion, store: StoreArg = None) -> ModelVersion:
    """``"name@alias"``, ``"name/3"`` or ``"name"`` (the latest version) -> the version."""
    if isinstance(ref, ModelVersion):
        return ref
    if not isinstance(ref, str):
        raise InvalidArgumentError("ref", ref, "pass 'name@alias', 'name/3' or 'name' (the latest version)")
    name, sep, which = ref.partition("@") if "@" in ref else ref.partition("/")
    model = get_model(name, store=store)
    if not sep:
        return model.latest
    if sep == "/" and not which.isdigit():
        raise InvalidArgumentError("ref", ref, f"after '/' comes a version number, e.g. '{name}/1'; for an alias "
                                   f"write '{name}@{which}'")
    if sep == "@":
        _check_alias(which)
    return model.version(which)


def load_model(ref: str | ModelVersion, *, model: Any = None, trusted: list[str] | None = None,
               allow_pickle: bool = False, store: StoreArg = None) -> Any:
    """Load a registered version (``"churn@champion"``, ``"churn/3"``, ``"churn"`` for the latest)
    through the loader its framework's integration registered. The built-in ones never unpickle
    unless ``allow_pickle=True``:

    * scikit-learn (skops): types outside skops' trusted defaults must be listed in ``trusted``
      (review them first), else an error lists them. A joblib file needs ``allow_pickle=True``.
    * PyTorch / Lightning: the weights are read with ``torch.load(weights_only=True)`` into
      ``model``: a module you built (``model=Net(...)``), or its class (``model=Net``), built with
      the hyper-parameters a Lightning checkpoint recorded. Returned in eval mode.
    * XGBoost: a ``Booster`` read from UBJSON (or JSON).
    """
    version = resolve(ref, store)
    if not isinstance(allow_pickle, bool):
        raise InvalidArgumentError("allow_pickle", allow_pickle, "pass True or False")
    if trusted is not None and not (isinstance(trusted, (list, tuple)) and all(isinstance(t, str) for t in trusted)):
        raise InvalidArgumentError("trusted", trusted, "pass a list of type names, as an earlier error listed them")
    entry = _loader_for(version)
    if entry is None:
        raise InvalidArgumentError("ref", version.ref, f"autotrack has no safe loader for its artifact "
                                   f"{version.artifact!r} (format {version.format!r}, framework {version.framework!r}); "
                                   f"read its bytes with autotrack.get_model({version.name!r})"
                                   f".version({version.version}).read_bytes()")
    from ._integrations import resolve as resolve_target

    try:
        loader = resolve_target(entry.loader)
    except ImportError as exc:
        raise MissingDependencyError(exc.name or entry.framework, entry.extra or entry.framework,
                                     f"loading a {entry.framework} model") from None
    data = version.read_bytes()
    return loader(version, data, model=model, trusted=list(trusted) if trusted is not None else None,
                  allow_pickle=allow_pickle)


# -- helpers ----------------------------------------------------------------------------------------


def _store(store: StoreArg) -> Backend:
    return store_for(store)


def _version(st: Backend, row: ModelVersionRow, aliases: tuple[str, ...]) -> ModelVersion:
    meta = json.loads(row.meta) if row.meta else {}
    return ModelVersion(row.name, row.version, row.run_id, row.artifact, row.sha256, row.size, row.framework,
                        meta.get("format"), row.created, json.loads(row.tags) if row.tags else {}, row.description,
                        row.user, row.host, row.run_deleted is not None, meta, tuple(sorted(aliases)), st)


def _move(row: AliasMoveRow) -> AliasMove:
    return AliasMove(row.seq, row.alias, row.from_version, row.to_version, row.action, row.reason, row.user,
                     row.host, row.time)


def _versions_or_fail(st: Backend, name: str) -> list[ModelVersionRow]:
    rows = st.model_versions(name) if st.exists() else []
    if not rows:
        names = st.model_names() if st.exists() else []
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else " List them with `autotrack models`."
        raise ModelNotFoundError(name, None, f"no model named {name!r} in the store at {st.location}.{hint}")
    return rows


def _no_alias(name: str, alias: str, aliases: Mapping[str, int]) -> str:
    known = ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items())) or "none"
    return (f"model {name!r} has no alias {alias!r} (its aliases: {known}); set one with "
            f"autotrack.set_alias({name!r}, {alias!r}, VERSION)")


def check_model_name(name: Any, argument: str = "name") -> str:
    """``name`` if it is a valid model name, else an ``InvalidArgumentError`` naming ``argument``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgumentError(argument, name, "model names are 1-200 letters, digits, '_', '.' or '-', starting "
                                   "with a letter or digit (no '/' or '@': those select a version or an alias)")
    return name


_check_name = check_model_name


def _check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidArgumentError("alias", alias, "aliases are 1-100 letters, digits, '_', '.' or '-', starting with "
                                   "a letter or '_' (a number would read as a version), e.g. 'champion'")
    return alias


def _check_version(version: Any, argument: str = "version") -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not (0 < version < 2**63):
        raise InvalidArgumentError(argument, version, "pass a version number (1, 2, ...) as `autotrack models show` lists")
    return version


def _reason(reason: Any) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise InvalidArgumentError("reason", reason, "pass a short text, or None")
    return note_text(reason)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in a container without a passwd entry
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"
