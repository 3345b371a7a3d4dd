"""``reproduce(run_id, directory)``: write a bundle that recreates a recorded run.

The bundle (one folder)::

    README.md          what the run was, how to rerun it, and plainly what cannot be reproduced
    reproduce.sh       set up the environment, get the code, export the variables, run the command
    requirements.txt   every installed package pinned to the recorded version
    source.patch       the uncommitted changes at the time of the run (when recorded)
    code/              the entry script(s) stored with the run (used when there is no git commit)
    env.sh             the allow-listed environment variables, as ``export`` lines
    seeds.json         the recorded seeds
    run.json           id, name, params, argv and final metrics of the original run, to compare against

It reads the captured sections defensively: whatever is missing is written down as
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

from ._diff import PATCH_ARTIFACT, SCRIPT_PREFIX, _packages, source_artifacts
from ._errors import InvalidArgumentError

if TYPE_CHECKING:
    from ._query import RunRecord

_NOT_PINNABLE = ("autotrack-runs",)


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
    module = source.get("module")
    if isinstance(entry, str) and entry.startswith("-m "):
        module = entry[3:].strip()
    if module:
        return ["-m", str(module), *_argv(source)]
    if entry_rel:
        return [entry_rel, *_argv(source)]
    return None


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
    git = _dict(source.get("git"))
    seeds = record.info("seeds")
    data = record.info("data")
    hardware = record.info("hardware")
    limits: list[str] = []  # what cannot be reproduced
    notes: list[str] = []

    # -- requirements -----------------------------------------------------------------------
    packages = _packages(env_section)
    req_lines = [f"# Packages installed when run {record.id} was recorded (pinned)."]
    local_versions = []
    for name in sorted(packages):
        version = packages[name]
        if not version or name in _NOT_PINNABLE:
            req_lines.append(f"# {name}: version not recorded")
            continue
        if "+" in version:
            local_versions.append(f"{name}=={version}")
        req_lines.append(f"{name}=={version}")
    (out / "requirements.txt").write_text("\n".join(req_lines) + "\n")
    if not packages:
        limits.append("Installed packages: not recorded. requirements.txt is empty; install what the code imports by hand.")
    if local_versions:
        limits.append("Some packages have local versions (" + ", ".join(local_versions)
                      + "); they come from a special index or a local build, not from PyPI.")
    python_version = env_section.get("python") or _dict(env_section.get("python_info")).get("version")
    if not python_version:
        limits.append("Python version: not recorded.")

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
    remote = _redact(git.get("remote"))
    root = git.get("root") or source.get("repo_root")
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
        entry_rel = PurePosixPath(entry_str).name if entry_str else None
        if entry_rel and entry_rel not in scripts:
            limits.append(f"The entry script {entry_str} was not stored with the run.")
    if not source:
        limits.append("Source (entry point, arguments, git commit, uncommitted changes): not recorded.")
    elif not commit:
        limits.append("The run was not in a git repository (no commit recorded): only the entry script stored "
                      "with the run is in code/; other local modules and files it used are not.")
    untracked = git.get("untracked")
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
    env_vars = _dict(env_section.get("env") or env_section.get("env_vars") or env_section.get("environment_variables"))
    env_lines = ["# Allow-listed environment variables recorded with the run."]
    env_lines += [f"export {k}={shlex.quote(str(v))}" for k, v in sorted(env_vars.items()) if _valid_name(k)]
    (out / "env.sh").write_text("\n".join(env_lines) + "\n")
    limits.append("Only allow-listed environment variables were recorded"
                  + (f" ({', '.join(sorted(env_vars))})" if env_vars else " (none here)")
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
            path = _dict(item).get("path") if isinstance(item, dict) else None
            if path and (not root or _relative(str(path), root) is None):
                outside.append(f"{name} ({path}, fingerprint {_dict(item).get('sha256') or _dict(item).get('fingerprint') or 'n/a'})")
        if outside:
            limits.append("Data outside the repository is not in the bundle; fetch it and check its fingerprint: "
                          + "; ".join(outside))
    hw = ", ".join(str(v) for v in (_dict(hardware.get("cpu")).get("model") or hardware.get("cpu"),
                                     hardware.get("gpus") and f"{len(hardware['gpus'])} GPU(s)") if v)
    limits.append("Hardware and system libraries (GPU model, driver, CUDA/cuDNN, BLAS threads) are not pinned; "
                  "floating-point results may differ in the last digits on other machines"
                  + (f" (recorded on: {hw})." if hw else " (hardware: not recorded)."))

    # -- run.json, reproduce.sh, README -----------------------------------------------------
    run_info = {
        "id": record.id, "name": record.name, "experiment": record.experiment, "status": record.status,
        "params": record.params, "final_metrics": record.summary, "command": command, "commit": commit,
        "python": python_version,
    }
    (out / "run.json").write_text(json.dumps(run_info, indent=2, default=repr, allow_nan=True) + "\n")
    script = _script(record, commit=commit, remote=remote, has_patch=patch_text is not None, rel_cwd=rel_cwd or ".",
                     command=command, seeds=seeds, env_vars=env_vars)
    sh = out / "reproduce.sh"
    sh.write_text(script)
    sh.chmod(sh.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (out / "README.md").write_text(_readme(record, commit, remote, git, python_version, command, rel_cwd, scripts,
                                           patch_text is not None, limits, notes))
    return out


def _redact(url: Any) -> str | None:
    """A remote URL without any user:password@ part (never write credentials into the bundle)."""
    if not url:
        return None
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", str(url))


def _valid_name(name: str) -> bool:
    return bool(name) and name.replace("_", "a").isalnum() and not name[0].isdigit()


def _script(record: RunRecord, *, commit: str | None, remote: str | None, has_patch: bool, rel_cwd: str,
            command: list[str] | None, seeds: dict[str, Any], env_vars: dict[str, Any]) -> str:
    q = shlex.quote
    lines = [
        "#!/usr/bin/env bash",
        f"# Recreates autotrack run {record.id} ({record.name}, experiment {record.experiment}).",
        "# Options (environment variables):",
        "#   SKIP_INSTALL=1  use the current Python environment instead of a fresh venv from requirements.txt",
        "#   PYTHON=...      the Python to use (default: python3)",
        "#   WORKDIR=...     where to put the code (default: ./workdir next to this script)",
        "#   REPO=...        the git repository to clone (default: the recorded remote)",
        "set -euo pipefail",
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        'WORKDIR="${WORKDIR:-$HERE/workdir}"',
        'PYTHON="${PYTHON:-python3}"',
        "",
        "# 1. the Python environment",
        'if [ "${SKIP_INSTALL:-0}" != "1" ]; then',
        '  "$PYTHON" -m venv "$HERE/.venv"',
        '  PYTHON="$HERE/.venv/bin/python"',
        '  "$PYTHON" -m pip install -r "$HERE/requirements.txt"',
        "fi",
        "",
        "# 2. the code",
    ]
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
        lines.append('exec "$PYTHON" ' + " ".join(q(c) for c in command))
    else:
        lines.append('echo "the command was not recorded; edit this line" >&2; exit 2')
    return "\n".join(lines) + "\n"


def _readme(record: RunRecord, commit: str | None, remote: str | None, git: dict[str, Any], python_version: Any,
            command: list[str] | None, rel_cwd: str | None, scripts: list[str], has_patch: bool,
            limits: list[str], notes: list[str]) -> str:
    started = datetime.fromtimestamp(record.start_time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    final = ", ".join(f"{k} = {v:.6g}" for k, v in list(record.summary.items())[:12] if isinstance(v, float))
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
        "",
        "## What is recorded",
        "",
        f"- Python: {python_version or 'not recorded'}",
        f"- Commit: {commit or 'not recorded'}" + (f" on branch {git.get('branch')}" if git.get("branch") else ""),
        f"- Repository: {remote or 'not recorded'}",
        f"- Uncommitted changes: {'source.patch' if has_patch else ('none' if git.get('dirty') is False else 'not recorded')}",
        f"- Entry scripts stored with the run: {', '.join(scripts) if scripts else 'none'}",
        f"- Command: {'python ' + shlex.join(command) if command else 'not recorded'} (from `{rel_cwd or '.'}`)",
        "- Environment variables: env.sh; seeds: seeds.json; packages: requirements.txt",
        "",
    ]
    parts += [f"{n}" for n in notes] + ([""] if notes else [])
    parts += ["## What cannot be reproduced", ""] + [f"- {item}" for item in limits] + [""]
    return "\n".join(parts)
