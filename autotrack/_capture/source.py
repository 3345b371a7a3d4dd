"""The ``source`` section: entry point, argv, cwd and git state; the uncommitted diff and the entry
script are returned as texts for the caller to store as artifacts.

Works outside a git repository and without git installed (the section then says why). Every text
taken from outside (argv, remote URL, diff, script) goes through the secret filter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

from .._redact import Finding, describe, redact_argv, redact_text, redact_url, secret_env_values
from .._sections import DIFF_ARTIFACT as _DIFF_ARTIFACT
from .._sections import SCHEMA_VERSION, SOURCE_PREFIX, LocalModule, SourceSection

#: Largest entry script / diff stored (bytes); larger ones are cut and flagged.
MAX_SCRIPT_BYTES = 1 << 20
MAX_DIFF_BYTES = 5 << 20
MAX_UNTRACKED_NAMES = 500
GIT_TIMEOUT_S = 10.0


_roots_cache: dict[tuple[str, str], list[Path]] = {}


def _installed_roots() -> list[Path]:
    """The interpreter's and installed packages' folders (computed once per interpreter prefix:
    seed capture asks on every seeding call, scipy's and scikit-learn's imports included)."""
    key = (sys.prefix, sys.exec_prefix)
    roots = _roots_cache.get(key)
    if roots is None:
        roots = _roots_cache[key] = _find_installed_roots()
    return roots


def _find_installed_roots() -> list[Path]:
    import site
    import sysconfig

    roots = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib", "scripts")}
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # some virtualenv layouts
        pass
    return [Path(r).resolve() for r in roots if r]


def is_installed_code(path: Path) -> bool:
    """True for files of the interpreter, installed packages and their console scripts
    (``python -m pytest``, ``torchrun``): never the user's own code."""
    path = path.resolve()
    return any(path.is_relative_to(root) for root in _installed_roots())


def entry_point() -> tuple[str | None, Path | None]:
    """(how the program was started, the user's entry script file if there is one: not set for
    code of installed packages such as ``python -m pytest``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    argv0 = sys.argv[0] if sys.argv else ""
    if spec is not None and getattr(spec, "name", None) and spec.name != "__main__":
        module = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        origin = getattr(spec, "origin", None)
        script = Path(origin).resolve() if origin and os.path.isfile(origin) else None
        return f"python -m {module}", None if script is None or is_installed_code(script) else script
    if argv0 in ("", "-c"):
        return ("python -c" if argv0 == "-c" else "interactive"), None
    if "ipykernel" in argv0 or "IPython" in sys.modules and argv0.endswith("ipython"):
        return "notebook/ipython", None
    path = Path(argv0)
    if path.is_file():
        return str(path.resolve()), None if is_installed_code(path) else path.resolve()
    return argv0, None


#: The artifact holding the uncommitted diff of tracked files (read back by diff and reproduce).
DIFF_ARTIFACT = _DIFF_ARTIFACT
#: Local modules stored per run (without git) and their total size.
MAX_LOCAL_MODULES = 200
MAX_LOCAL_BYTES = 5 << 20


#: Runs started within this many seconds of each other in one process (a loop of fits, a sweep)
#: share one look at the code: git is not asked again for each of them.
SOURCE_CACHE_S = 10.0
_source_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any], dict[str, str]]] = {}


def capture_source(include_script: bool = True) -> tuple[SourceSection, dict[str, str]]:
    """Return (section, texts): ``texts`` maps artifact names (``source/git.diff``,
    ``source/<script>``) to contents, already redacted. Reused for ``SOURCE_CACHE_S`` seconds
    within one process and working directory."""
    import copy
    import time

    key = (os.getpid(), os.getcwd(), tuple(sys.argv), include_script)
    hit = _source_cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < SOURCE_CACHE_S:
        return cast(SourceSection, copy.deepcopy(hit[1])), dict(hit[2])
    section, texts = _capture_source(include_script)
    _source_cache.clear()
    _source_cache[key] = (now, copy.deepcopy(section), dict(texts))
    return cast(SourceSection, section), texts


def _capture_source(include_script: bool) -> tuple[dict[str, Any], dict[str, str]]:
    secrets = secret_env_values()
    found: list[Finding] = []
    entry, script = entry_point()
    section: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "entry_point": entry,
        "argv": redact_argv(sys.argv, found=found),
        "cwd": os.getcwd(),
        "executable": sys.executable,
    }
    launcher = sys.modules.get("autotrack._autolog_cli")
    if getattr(launcher, "launched", False):
        section["launcher"] = "autotrack run"
    texts: dict[str, str] = {}
    if include_script and script is not None:
        section["script"] = str(script)
        try:
            data = script.read_bytes()
            section["script_bytes"] = len(data)
            if len(data) <= MAX_SCRIPT_BYTES:
                name = f"source/{script.name}"
                texts[name] = redact_text(data.decode("utf-8", "replace"), secrets, path=script.name,
                                          found=found, where={"where": "file", "file": name})
                section["script_artifact"] = name
            else:
                section["script_artifact"] = None
                section["script_skipped"] = f"larger than {MAX_SCRIPT_BYTES} bytes"
        except OSError as exc:
            section["script_skipped"] = f"unreadable: {exc}"
    candidates = []
    if script is not None:
        candidates.append(script.parent)
    candidates.append(Path.cwd())
    git, diff = git_state(candidates, secrets, found)
    section["git"] = git
    if diff:
        texts[DIFF_ARTIFACT] = diff
        git["diff_artifact"] = DIFF_ARTIFACT
    if found:
        # where a value was replaced (never the value): argv index, or file and line
        section["redactions"] = describe(found)
    return section, texts


def _git(git: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    return subprocess.run([git, *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT_S, env=env,
                          stdin=subprocess.DEVNULL)


def git_state(folders: list[Path], secrets: list[str] | None = None,
              found: list[Finding] | None = None) -> tuple[dict[str, Any], str]:
    """(the ``git`` part of the section, the redacted uncommitted diff of tracked files)."""
    git = shutil.which("git")
    if git is None:
        return {"available": False, "reason": "git is not installed"}, ""
    secrets = secret_env_values() if secrets is None else secrets
    top = None
    for folder in folders:
        try:
            out = _git(git, folder, "rev-parse", "--show-toplevel")
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0:
            top = Path(out.stdout.decode().strip())
            break
    if top is None:
        return {"available": False, "reason": "not inside a git repository"}, ""
    info: dict[str, Any] = {"available": True, "root": str(top)}
    try:
        status = _git(git, top, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal")
        if status.returncode != 0:
            raise OSError(status.stderr.decode("utf-8", "replace").strip())
        info["commit"] = info["branch"] = None
        untracked: list[str] = []
        changed: list[str] = []
        tokens = iter(status.stdout.decode("utf-8", "replace").split("\0"))
        for token in tokens:
            if token.startswith("# branch.oid "):
                oid = token[len("# branch.oid "):]
                info["commit"] = None if oid == "(initial)" else oid
            elif token.startswith("# branch.head "):
                head = token[len("# branch.head "):]
                info["branch"] = None if head == "(detached)" else head  # None: detached HEAD
            elif token.startswith("? "):
                untracked.append(token[2:])
            elif token.startswith(("1 ", "u ")):
                changed.append(token.split(" ", 8 if token[0] == "1" else 10)[-1])
            elif token.startswith("2 "):
                changed.append(token.split(" ", 9)[-1])
                next(tokens, None)  # the rename's original path
        remotes = _git(git, top, "config", "--get-regexp", r"^remote\..*\.url$")
        urls = {}
        for line in remotes.stdout.decode("utf-8", "replace").splitlines():
            key, _, url = line.partition(" ")
            urls[key[len("remote."):-len(".url")]] = url.strip()
        remote_name = "origin" if "origin" in urls else (sorted(urls)[0] if urls else None)
        info["remote"] = remote_name
        info["remote_url"] = (redact_text(redact_url(urls[remote_name]), secrets, found=found,
                                          where={"where": "git", "key": "remote_url"}) if remote_name else None)
        info["dirty"] = bool(changed)
        info["changed_files"] = len(changed)
        info["untracked_files"] = untracked[:MAX_UNTRACKED_NAMES]
        if len(untracked) > MAX_UNTRACKED_NAMES:
            info["untracked_truncated"] = len(untracked)
        diff = ""
        if changed:
            # Against HEAD: staged and unstaged changes of tracked files (all of the index when
            # the repository has no commit yet).
            args = ["diff", "--no-color", "--no-ext-diff", "HEAD"] if info["commit"] else ["diff", "--no-color", "--cached"]
            out = _git(git, top, *args)
            raw = out.stdout
            if len(raw) > MAX_DIFF_BYTES:
                info["diff_truncated_from_bytes"] = len(raw)
                raw = raw[:MAX_DIFF_BYTES]
            diff = redact_text(raw.decode("utf-8", "replace"), secrets, found=found,
                               where={"where": "file", "file": DIFF_ARTIFACT})
            info["diff_bytes"] = len(raw)
        return info, diff
    except subprocess.TimeoutExpired:
        info["error"] = f"git took longer than {GIT_TIMEOUT_S:.0f} s"
    except OSError as exc:
        info["error"] = f"git failed: {exc}"
    return info, ""


# -- local modules (runs outside git) ---------------------------------------------------------------


#: a module file's resolved path when it may be user code (None: installed, autotrack's own, or no
#: file), per ``__file__`` string: a process has thousands of modules and ends many runs (one per
#: scikit-learn fit), and resolving every path again at each run end cost ~0.3 s with torch loaded
_user_code_cache: dict[str, Path | None] = {}


def _user_code(file: str, own: Path, installed: tuple[str, ...]) -> Path | None:
    """``own``: the autotrack package; ``installed``: the installed folders and ``own`` as
    prefixes (``"/.../site-packages/"``)."""
    if file in _user_code_cache:
        return _user_code_cache[file]
    if file.startswith(installed):
        _user_code_cache[file] = None  # spelled inside an installed folder: no need to resolve it
        return None
    try:
        path: Path | None = Path(file).resolve()
        if not path.is_file() or path.is_relative_to(own) or is_installed_code(path):
            path = None
    except OSError:
        return None  # not cached: the file may appear (a module written while the run goes on)
    _user_code_cache[file] = path
    return path


def local_modules(script: Path, stored: set[str] | None = None) -> tuple[list[LocalModule], dict[str, str]]:
    """The modules imported so far from the entry script's folder tree (``model.py``,
    ``pkg/data.py``), for runs whose code is not in git: (entries for the ``source`` section,
    artifact name -> redacted text). Installed code, autotrack itself, the script and artifact
    names in ``stored`` are left out; at most ``MAX_LOCAL_MODULES`` files and ``MAX_LOCAL_BYTES``
    in all are read (larger files are listed with ``skipped``)."""
    root = script.parent.resolve()
    script = script.resolve()
    own = Path(__file__).resolve().parents[1]  # the autotrack package
    installed = tuple(f"{folder}{os.sep}" for folder in (*_installed_roots(), own))
    stored = stored or set()
    secrets = secret_env_values()
    found: dict[Path, None] = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        # a relative __file__ is no file on disk: torch's `torch._classes` and `torch._ops` say "_classes.py"
        if not isinstance(file, str) or not file.endswith(".py") or not os.path.isabs(file):
            continue
        path = _user_code(file, own, installed)
        if path is None or path == script or not path.is_relative_to(root):
            continue
        found[path] = None
    entries: list[LocalModule] = []
    texts: dict[str, str] = {}
    total = 0
    for path in sorted(found)[:MAX_LOCAL_MODULES]:
        rel = path.relative_to(root).as_posix()
        name = SOURCE_PREFIX + rel
        entry: LocalModule = {"path": rel, "artifact": None}
        try:
            data = path.read_bytes()
        except OSError as exc:
            entry["skipped"] = f"unreadable: {exc}"
            entries.append(entry)
            continue
        entry["bytes"] = len(data)
        if len(data) > MAX_SCRIPT_BYTES or total + len(data) > MAX_LOCAL_BYTES:
            entry["skipped"] = f"over the size cap ({MAX_SCRIPT_BYTES} bytes a file, {MAX_LOCAL_BYTES} in all)"
        elif name not in stored:
            total += len(data)
            texts[name] = redact_text(data.decode("utf-8", "replace"), secrets)
            entry["artifact"] = name
        else:
            entry["artifact"] = name
        entries.append(entry)
    return entries, texts
