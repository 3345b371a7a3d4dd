"""``reproduce(run_id, directory)``: write a bundle that recreates a recorded run;
``verify(run_id, directory)``: build it, rerun it under autotrack and say whether it reproduced.

The bundle (one folder)::

    README.md               what the run was, how to rerun it, and plainly what cannot be reproduced
    reproduce.sh            set up the environment, get the code, export the variables, run the command
    requirements.txt        the distributions the run imported, pinned to the recorded versions
    requirements-full.txt   every distribution installed when the run was recorded
    source.patch            the uncommitted changes at the time of the run (when recorded)
    code/                   the entry script and local modules stored with the run (used without git)
    env.sh                  the allow-listed environment variables, as ``export`` lines (machine-specific
                            ones such as ``VIRTUAL_ENV`` are listed as comments, not exported)
    seeds.json              the recorded seeds
    run.json                id, name, params, argv and final metrics of the original run, to compare against

autotrack itself (distribution ``autotrack-ml``; the name ``autotrack`` on PyPI is someone else's
project) is installed only when the run needs it (the script imports autotrack, or ``autotrack run``
launched it): from ``AUTOTRACK_SOURCE`` (a wheel or checkout of this project), by default the checkout
the run was recorded with, else ``autotrack-ml==<recorded version>``.

Sections are read through :mod:`autotrack._sections`; whatever is missing is written down as
"not recorded" in the README instead of failing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from . import _sections as S
from ._diff import PATCH_ARTIFACT, SCRIPT_PREFIX, artifact_text, source_artifacts
from ._errors import InvalidArgumentError

if TYPE_CHECKING:
    from ._query import RunRecord

_NOT_PINNABLE = ("autotrack-runs",)
#: autotrack's own distribution names: never pinned from an index (see the module docstring)
_SELF = (S.DISTRIBUTION, "autotrack")
#: environment variables that describe the recording machine, not the run: not exported by env.sh
MACHINE_SPECIFIC_ENV = ("VIRTUAL_ENV", "CONDA_DEFAULT_ENV", "CONDA_PREFIX", "KUBERNETES_POD_NAME", "MASTER_PORT",
                        "SLURM_", "PBS_JOBID", "LSB_JOBID", "JOB_ID", "SGE_TASK_ID", "FLUX_JOB_ID", "CUDA_HOME",
                        "CUDA_PATH")
#: metrics shown last (or not at all) among a run's final metrics: they describe the machine or the
#: internals of training, not its result
_IMPORTS_AUTOTRACK = re.compile(r"^\s*(import\s+autotrack\b|from\s+autotrack(\.|\s))", re.M)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _argv(source: dict[str, Any]) -> list[str]:
    argv = source.get("argv")
    if isinstance(argv, str):
        argv = shlex.split(argv)
    if not isinstance(argv, list):
        return []
    argv = [str(a) for a in argv]
    entry = source.get("entry_point")
    if argv and entry and PurePosixPath(argv[0]).name == PurePosixPath(str(entry)).name:
        argv = argv[1:]  # sys.argv with the script itself in front
    elif argv and isinstance(entry, str) and entry.startswith("python -m ") and argv[0] in (entry[10:], "-m"):
        argv = argv[1:]
    return argv


def _relative(path: str | None, root: str | None) -> str | None:
    if not path:
        return None
    if root and os.path.isabs(path):
        try:
            rel = os.path.relpath(path, root)
        except ValueError:
            return None
        return None if rel.startswith("..") else rel
    return None if os.path.isabs(path) else path


def _command(source: dict[str, Any], entry_rel: str | None) -> list[str] | None:
    entry = source.get("entry_point")
    module = None
    if isinstance(entry, str) and entry.startswith("python -m "):
        module = entry[len("python -m "):].strip()
    if module:
        return ["-m", str(module), *_argv(source)]
    if entry_rel:
        return [entry_rel, *_argv(source)]
    return None


def final_metrics(record: RunRecord, limit: int = 12) -> tuple[list[tuple[str, float]], int]:
    """(up to ``limit`` final metric values in :func:`metric_order`, machine metrics left out; how
    many more there are)."""
    keys = sorted((k for k in record.summary if not k.startswith(S.BACKGROUND_PREFIXES)), key=S.metric_order)
    shown = [(k, record.summary[k]) for k in keys[:limit]]
    return shown, max(0, len(keys) - limit)


def _requirements(record: RunRecord, env_section: dict[str, Any], limits: list[str]) -> tuple[list[str], list[str]]:
    """(requirements.txt lines: imported distributions, requirements-full.txt lines)."""
    installed = S.packages(env_section)
    imports = S.read(record, "imports")
    imported = {S.DISTRIBUTION if k == "autotrack" else str(k).lower(): str(v)
                for k, v in _dict(imports.get("distributions")).items()}

    def pins(packages: dict[str, str], header: str) -> list[str]:
        lines = [header]
        for name in sorted(packages):
            version = packages[name]
            if name in _SELF or name in _NOT_PINNABLE:
                continue  # autotrack itself: reproduce.sh installs it from this project's code
            lines.append(f"{name}=={version}" if version else f"{name}  # version not recorded")
        return lines

    full = pins(installed, f"# Every distribution installed when run {record.id} was recorded (pinned).")
    if imports:
        req = pins(imported, f"# The distributions run {record.id} imported, pinned to the recorded versions."
                             " The whole environment: requirements-full.txt.")
    else:
        req = pins(installed, f"# Run {record.id} did not record what it imported: every installed distribution.")
        if installed:
            limits.append("What the run imported was not recorded: requirements.txt is the whole recorded environment.")
    if not installed and not imports:
        limits.append("Installed packages: not recorded. requirements.txt is empty; install what the code imports by hand.")
    local = [line for line in req if "==" in line and "+" in line.split("==", 1)[1]]
    if local:
        limits.append("Some packages have local versions (" + ", ".join(local)
                      + "); they come from a special index or a local build, not from PyPI.")
    return req, full


def _needs_autotrack(record: RunRecord, source: dict[str, Any]) -> bool | None:
    """Whether the run's code uses autotrack (True), does not (False: its stored code imports no
    autotrack and it was not launched by ``autotrack run``), or None: nothing tells."""
    if source.get("launcher") == "autotrack run":
        return True
    if record.tags.get("autotrack.integration"):  # a callback, wrapper or autolog() of the run's process
        return True
    stored = False
    for name in source_artifacts(record):
        if name == PATCH_ARTIFACT:
            continue
        text = artifact_text(record, name)
        stored = stored or text is not None
        if text and _IMPORTS_AUTOTRACK.search(text):
            return True
    return False if stored else None


def _portable_env(env_vars: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(variables env.sh exports, machine-specific ones it only lists)."""
    keep, skip = {}, {}
    for key, value in sorted(env_vars.items()):
        if key == "VIRTUAL_ENV" or key.startswith(MACHINE_SPECIFIC_ENV) or (isinstance(value, str) and os.path.isabs(value)
                                                                          and os.sep in value and key != "PYTHONHASHSEED"):
            skip[key] = str(value)
        else:
            keep[key] = str(value)
    return keep, skip


def reproduce(run_id: str | RunRecord, directory: str | os.PathLike[str]) -> Path:
    """Write the reproduction bundle of ``run_id`` into ``directory`` (created; must be empty or
    new). Returns the folder."""
    from ._query import get_run

    record = get_run(run_id) if isinstance(run_id, str) else run_id
    out = Path(directory)
    if out.exists() and any(out.iterdir()):
        raise InvalidArgumentError("directory", str(out), "pass a new or empty folder for the bundle")
    out.mkdir(parents=True, exist_ok=True)

    source = record.info("source")
    env_section = record.info("environment")
    git = S.git_info(source)
    seeds = record.info("seeds")
    data = record.info("data")
    hardware = record.info("hardware")
    limits: list[str] = []  # what cannot be reproduced
    notes: list[str] = []

    # -- requirements -----------------------------------------------------------------------
    req, full = _requirements(record, env_section, limits)
    (out / "requirements.txt").write_text("\n".join(req) + "\n")
    (out / "requirements-full.txt").write_text("\n".join(full) + "\n")
    python_version = S.python_version(env_section)
    if not python_version:
        limits.append("Python version: not recorded.")
    origin = _dict(env_section.get("autotrack"))
    needs_autotrack = _needs_autotrack(record, source)

    # -- code -------------------------------------------------------------------------------
    arts = source_artifacts(record)
    patch_art = arts.pop(PATCH_ARTIFACT, None)
    patch_text = None
    if patch_art is not None and patch_art.stored and patch_art.path:
        patch_text = Path(patch_art.path).read_text(encoding="utf-8", errors="replace")
        if patch_text.strip():
            (out / "source.patch").write_text(patch_text)
        else:
            patch_text = None
    code_dir = out / "code"
    scripts = []
    for name, art in arts.items():
        if not (art.stored and art.path):
            continue
        rel = name[len(SCRIPT_PREFIX):]
        target = code_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(art.path, target)
        scripts.append(rel)

    commit = git.get("commit")
    remote = _redact(git.get("remote_url"))
    root = git.get("root")
    cwd = source.get("cwd")
    entry = source.get("entry_point")
    entry_str = str(entry) if entry else None
    if commit:
        rel_cwd = _relative(cwd, root) if root else "."
        if root and cwd and rel_cwd is None:
            limits.append(f"The run was started from {cwd}, outside its repository {root}; the command runs from the repository root instead.")
            rel_cwd = "."
        if not root:
            notes.append("The repository root was not recorded; the command is run from the root of the checkout.")
        entry_rel = entry_str
        if entry_str and os.path.isabs(entry_str):
            entry_rel = _relative(entry_str, cwd) or _relative(entry_str, root)
            if entry_rel is None:
                limits.append(f"The entry script {entry_str} lies outside the repository and is not reproduced from git.")
        if not remote:
            limits.append("No git remote was recorded: set REPO=/path/to/a/clone (or URL) before running reproduce.sh.")
        if git.get("dirty") and patch_text is None:
            limits.append("The working tree had uncommitted changes, but no diff was recorded: they are lost.")
    else:
        rel_cwd = "."
        entry_rel = PurePosixPath(entry_str).name if entry_str and not entry_str.startswith("python ") else None
        if entry_rel and entry_rel not in scripts:
            limits.append(f"The entry script {entry_str} was not stored with the run.")
    if not source:
        limits.append("Source (entry point, arguments, git commit, uncommitted changes): not recorded.")
    elif not commit:
        modules = [m for m in source.get("local_modules") or [] if isinstance(m, dict)]
        stored = [m["path"] for m in modules if m.get("artifact")]
        skipped = [f"{m.get('path')} ({m.get('skipped')})" for m in modules if m.get("skipped")]
        limits.append("The run was not in a git repository (no commit recorded): code/ holds the entry script"
                      + (f" and the local modules it imported ({', '.join(stored)})" if stored else
                         " (no local modules it imported were found)")
                      + "; data files and modules loaded by other means are not in the bundle.")
        if skipped:
            limits.append("Local modules not stored: " + ", ".join(skipped) + ".")
    untracked = git.get("untracked_files")
    if isinstance(untracked, list) and untracked:
        limits.append("Untracked files (not in git, not in this bundle): " + ", ".join(map(str, untracked[:50]))
                      + (" ..." if len(untracked) > 50 else ""))
    elif commit and untracked is None:
        limits.append("Untracked files (files not added to git) are not recorded and not in this bundle.")
    command = _command(source, entry_rel)
    if command is None:
        limits.append("The command (entry point and arguments): not recorded. Edit the last line of reproduce.sh.")
    elif source.get("argv") is None:
        limits.append("Command-line arguments: not recorded; the script runs with none.")

    # -- environment variables and seeds ----------------------------------------------------
    env_vars, machine_env = _portable_env(_dict(env_section.get("env")))
    env_lines = ["# Allow-listed environment variables recorded with the run."]
    env_lines += [f"export {k}={shlex.quote(v)}" for k, v in env_vars.items() if _valid_name(k)]
    if machine_env:
        env_lines.append("# Recorded but not exported (they describe the recording machine):")
        env_lines += [f"#   {k}={v!r}" for k, v in machine_env.items() if _valid_name(k)]
    (out / "env.sh").write_text("\n".join(env_lines) + "\n")
    recorded_env = sorted({**env_vars, **machine_env})
    limits.append("Only allow-listed environment variables were recorded"
                  + (f" ({', '.join(recorded_env)})" if recorded_env else " (none here)")
                  + "; others (and secrets, by design) are not.")
    (out / "seeds.json").write_text(json.dumps(seeds, indent=2, default=repr) + "\n")
    if not seeds:
        limits.append("Seeds: not recorded. If the code draws random seeds, results will differ run to run.")
    else:
        notes.append("The seeds are set by the code itself (seeds.json lists what it used); reproduce.sh also "
                     "exports them as AUTOTRACK_SEEDS (JSON) and PYTHONHASHSEED when recorded.")

    # -- data and hardware ------------------------------------------------------------------
    if not data:
        limits.append("Data inputs: not recorded. Make sure the data is the same as at the time of the run.")
    else:
        outside = []
        for name, item in data.items():
            item = _dict(item)
            path = item.get("path")
            if path and (not root or _relative(str(path), root) is None):
                outside.append(f"{name} ({path}, fingerprint {S.data_hash(item) or 'not hashed'})")
        if outside:
            limits.append("Data outside the repository is not in the bundle; fetch it and check its fingerprint: "
                          + "; ".join(outside))
    machine = S.machine_summary(hardware, env_section)
    hw = "; ".join(f"{k}: {v}" for k, v in machine.items() if k in ("cpu", "gpus") and v != S.NOT_RECORDED)
    limits.append("Hardware and system libraries (GPU model, driver, CUDA/cuDNN, BLAS threads) are not pinned; "
                  "floating-point results may differ in the last digits on other machines"
                  + (f" (recorded on: {hw})." if hw else " (hardware: not recorded)."))

    # -- run.json, reproduce.sh, README -----------------------------------------------------
    run_info = {
        "id": record.id, "name": record.name, "experiment": record.experiment, "status": record.status,
        "params": record.params, "final_metrics": record.summary, "command": command, "commit": commit,
        "python": python_version, "launcher": source.get("launcher"),
    }
    (out / "run.json").write_text(json.dumps(run_info, indent=2, default=repr, allow_nan=True) + "\n")
    script = _script(record, commit=commit, remote=remote, has_patch=patch_text is not None, rel_cwd=rel_cwd or ".",
                     command=command, seeds=seeds, env_vars=env_vars, needs_autotrack=needs_autotrack,
                     origin=origin, launcher=source.get("launcher"))
    sh = out / "reproduce.sh"
    sh.write_text(script)
    sh.chmod(sh.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (out / "README.md").write_text(_readme(record, commit, remote, git, python_version, command, rel_cwd, scripts,
                                           patch_text is not None, limits, notes, machine, needs_autotrack, origin))
    return out


def _redact(url: Any) -> str | None:
    """A remote URL without any user:password@ part (never write credentials into the bundle)."""
    if not url:
        return None
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", str(url))


def _valid_name(name: str) -> bool:
    return bool(name) and name.replace("_", "a").isalnum() and not name[0].isdigit()


def _script(record: RunRecord, *, commit: str | None, remote: str | None, has_patch: bool, rel_cwd: str,
            command: list[str] | None, seeds: dict[str, Any], env_vars: dict[str, Any], needs_autotrack: bool,
            origin: dict[str, Any], launcher: Any) -> str:
    q = shlex.quote
    version = str(origin.get("version") or "")
    checkout = origin.get("checkout") or ""
    lines = [
        "#!/usr/bin/env bash",
        f"# Recreates autotrack run {record.id} ({record.name}, experiment {record.experiment}).",
        "# Options (environment variables):",
        "#   SKIP_INSTALL=1      use the current Python environment instead of a fresh venv from requirements.txt",
        "#   PYTHON=...          the Python to use (default: python3); a relative path is fine",
        "#   VENV_OPTIONS=...    options for `python -m venv`, e.g. --system-site-packages",
        "#   WORKDIR=...         where to put the code (default: ./workdir next to this script)",
        "#   REPO=...            the git repository to clone (default: the recorded remote URL)",
        "#   AUTOTRACK_SOURCE=.. a wheel or checkout of autotrack (distribution autotrack-ml) to install",
        "#   UNDER_AUTOTRACK=1   run the command under `autotrack run` (the rerun is recorded as a run)",
        "set -euo pipefail",
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        "_abs() { case \"$1\" in /*|'') printf '%s' \"$1\" ;; */*) printf '%s/%s' \"$(cd \"$(dirname \"$1\")\" && pwd)\" \"$(basename \"$1\")\" ;; *) printf '%s' \"$1\" ;; esac; }",
        '# paths given relative to where this script was started stay valid after the cd below',
        'PYTHON="$(_abs "${PYTHON:-python3}")"',
        'WORKDIR="${WORKDIR:-$HERE/workdir}"',
        'case "$WORKDIR" in /*) ;; *) WORKDIR="$PWD/$WORKDIR" ;; esac',
        f"AUTOTRACK_VERSION={q(version)}",
        f"DEFAULT_AUTOTRACK_SOURCE={q(str(checkout))}",
        'AUTOTRACK_SOURCE="$(_abs "${AUTOTRACK_SOURCE:-$DEFAULT_AUTOTRACK_SOURCE}")"',
        f"UNDER_AUTOTRACK=\"${{UNDER_AUTOTRACK:-{'1' if launcher == 'autotrack run' else '0'}}}\"",
        "",
        "# 1. the Python environment",
        'if [ "${SKIP_INSTALL:-0}" != "1" ]; then',
        '  # shellcheck disable=SC2086',
        '  "$PYTHON" -m venv ${VENV_OPTIONS:-} "$HERE/.venv"',
        '  PYTHON="$HERE/.venv/bin/python"',
        '  "$PYTHON" -m pip install -q -r "$HERE/requirements.txt"',
    ]
    if needs_autotrack is not False or launcher == "autotrack run":
        lines += [
            "  # autotrack itself: this project's code (distribution autotrack-ml), never the unrelated",
            '  # `autotrack` on PyPI. Kept when the environment already has the recorded version.',
            '  # (no recorded version: any installed autotrack is kept, else the newest is installed)',
            '  if ! "$PYTHON" -c "import autotrack, sys; sys.exit(bool(sys.argv[1]) and autotrack.__version__ != sys.argv[1])" "$AUTOTRACK_VERSION" 2>/dev/null; then',
            '    if [ -n "$AUTOTRACK_SOURCE" ] && [ -e "$AUTOTRACK_SOURCE" ]; then',
            '      "$PYTHON" -m pip install -q "$AUTOTRACK_SOURCE"',
            '    else',
            '      "$PYTHON" -m pip install -q "autotrack-ml${AUTOTRACK_VERSION:+==$AUTOTRACK_VERSION}"',
            '    fi',
            '  fi',
        ]
    else:
        lines.append("  # the run does not import autotrack: it is not installed (UNDER_AUTOTRACK=1 needs it)")
    lines += ["fi", "", "# 2. the code"]
    if commit:
        lines += [
            f"DEFAULT_REPO={q(remote or '')}",
            'REPO="${REPO:-$DEFAULT_REPO}"',
            'if [ -z "$REPO" ]; then echo "set REPO to a clone or URL of the repository" >&2; exit 2; fi',
            'if [ ! -d "$WORKDIR/.git" ]; then git clone --quiet "$REPO" "$WORKDIR"; fi',
            f'git -C "$WORKDIR" -c advice.detachedHead=false checkout --quiet {q(commit)}',
        ]
        if has_patch:
            lines.append('git -C "$WORKDIR" apply --whitespace=nowarn "$HERE/source.patch"')
    else:
        lines += ['mkdir -p "$WORKDIR"', 'if [ -d "$HERE/code" ]; then cp -R "$HERE/code/." "$WORKDIR/"; fi']
    lines += ["", "# 3. environment variables and seeds", '. "$HERE/env.sh"']
    if seeds:
        lines.append(f"export AUTOTRACK_SEEDS={q(json.dumps(seeds, default=repr))}")
        hash_seed = seeds.get("PYTHONHASHSEED", seeds.get("pythonhashseed"))
        if hash_seed is not None and "PYTHONHASHSEED" not in env_vars:
            lines.append(f"export PYTHONHASHSEED={q(str(hash_seed))}")
    lines += ["", "# 4. the command", f"REL_CWD={q(rel_cwd)}", 'cd "$WORKDIR/$REL_CWD"']
    if command:
        args = " ".join(q(c) for c in command)
        run_args = " ".join(q(c) for c in (["-m", *command[1:]] if command[0] == "-m" else command))
        lines += [
            'if [ "$UNDER_AUTOTRACK" = "1" ]; then',
            f'  exec "$PYTHON" -m autotrack run {run_args}',
            "fi",
            f'exec "$PYTHON" {args}',
        ]
    else:
        lines.append('echo "the command was not recorded; edit this line" >&2; exit 2')
    return "\n".join(lines) + "\n"


def _readme(record: RunRecord, commit: str | None, remote: str | None, git: dict[str, Any], python_version: Any,
            command: list[str] | None, rel_cwd: str | None, scripts: list[str], has_patch: bool,
            limits: list[str], notes: list[str], machine: dict[str, str], needs_autotrack: bool,
            origin: dict[str, Any]) -> str:
    started = datetime.fromtimestamp(record.start_time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    shown, more = final_metrics(record)
    final = ", ".join(f"{k} = {v:.6g}" for k, v in shown if isinstance(v, float))
    if more:
        final += f" ({more} more in run.json)"
    branch = git.get("branch")
    autotrack_line = ("- autotrack: " + (f"{origin.get('version')}" if origin.get("version") else S.NOT_RECORDED)
                      + (f" from the checkout {origin['checkout']}" if origin.get("checkout") else "")
                      + ("; installed by reproduce.sh (distribution autotrack-ml)" if needs_autotrack
                         else "; the run's stored code does not import it" if needs_autotrack is False
                         else "; whether the run's code imports it: not recorded (reproduce.sh installs it)"))
    parts = [
        f"# Reproducing run `{record.name}` ({record.id})",
        "",
        f"Experiment `{record.experiment}`, started {started}, status `{record.status}`.",
        f"Final metrics: {final or 'none recorded'}.",
        "",
        "## How",
        "",
        "    ./reproduce.sh                 # fresh venv from requirements.txt, then the run",
        "    SKIP_INSTALL=1 ./reproduce.sh  # in the current environment",
        f"    PYTHON=python{'.'.join(str(python_version).split('.')[:2])} ./reproduce.sh   # the venv from the recorded Python"
        if python_version else "    PYTHON=/path/to/python ./reproduce.sh   # choose the Python for the venv",
        f"    autotrack reproduce {record.id[:8]} --dir DIR --run   # rebuild, rerun under autotrack, compare",
        "",
        "## What is recorded",
        "",
        f"- Python: {python_version or S.NOT_RECORDED}",
        f"- Commit: {commit or S.NOT_RECORDED}" + (f" on branch {branch}" if branch else ""),
        f"- Repository: {remote or S.NOT_RECORDED}",
        f"- Uncommitted changes: {'source.patch' if has_patch else ('none' if git.get('dirty') is False else S.NOT_RECORDED)}",
        f"- Code stored with the run: {', '.join(scripts) if scripts else 'none'}",
        f"- Command: {'python ' + shlex.join(command) if command else S.NOT_RECORDED} (from `{rel_cwd or '.'}`)",
        autotrack_line,
        "- Environment variables: env.sh; seeds: seeds.json; packages: requirements.txt (imported), "
        "requirements-full.txt (all installed)",
        "",
        "## Machine",
        "",
    ]
    parts += [f"- {k}: {v}" for k, v in machine.items()] + [""]
    parts += [f"{n}" for n in notes] + ([""] if notes else [])
    parts += ["## What cannot be reproduced", ""] + [f"- {item}" for item in limits] + [""]
    return "\n".join(parts)
