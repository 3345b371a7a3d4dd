"""``autotrack doctor``: what autotrack would capture on this machine, and the store's health."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click


def store_health(location: str | os.PathLike[str], *, verify: bool = False) -> dict[str, Any]:
    """Location, existence, schema version, integrity, runs by status and artifact size of a store;
    read-only (never creates the store). ``verify`` also checks every metric chunk's and section's
    checksum and every stored blob's hash."""
    from ..store import effective_status, is_url, open_backend
    from ..store.sqlite import SCHEMA_VERSION

    backend = open_backend(location)
    out: dict[str, Any] = {"path": backend.location, "exists": backend.exists()}
    if not out["exists"]:
        if not is_url(location):
            root = Path(location).expanduser().resolve()
            parent = root if root.exists() else root.parent
            out["writable"] = os.access(parent, os.W_OK)
        out["note"] = "no store here yet; the first run creates it"
        return out
    health = backend.health(verify=verify)
    db_path = getattr(backend, "db_path", None)
    out["writable"] = os.access(db_path.parent, os.W_OK) if db_path is not None else backend.writable
    if db_path is not None:
        out["db_bytes"] = db_path.stat().st_size
    out["schema_version"] = health.schema_version
    out["schema_current"] = health.schema_version == getattr(backend, "schema_version", SCHEMA_VERSION)
    out["integrity"] = health.integrity if health.error is None else f"cannot read: {health.error}"
    if health.error is None:
        counts: dict[str, int] = {}
        try:
            from ..store import RunQuery

            for row in backend.find_runs(RunQuery()):
                status = effective_status(row)
                counts[status] = counts.get(status, 0) + 1
        except Exception as exc:  # noqa: BLE001 - a damaged store is what the doctor is for
            out["integrity"] = f"cannot read runs: {exc}"
        out["runs"] = sum(counts.values())
        out["runs_by_status"] = counts
        out["experiments"] = health.experiments
    if verify:
        out["damaged"] = list(health.damaged)
    total = files = 0
    for _sha, size in backend.blobs.list():
        total += size
        files += 1
    out["artifact_files"] = files
    out["artifact_bytes"] = total
    out["healthy"] = (out.get("integrity") == "ok" and out.get("schema_current", False) and bool(out["writable"])
                      and not out.get("damaged"))
    return out


def report(store_path: str | os.PathLike[str], *, verify: bool = False) -> dict[str, Any]:
    """Everything the doctor shows, as a dict."""
    from . import settings
    from .environment import capture_environment
    from .hardware import capture_hardware
    from .source import capture_source

    s = settings()
    source, texts = capture_source(include_script=False)
    environment = capture_environment(include_packages=True, extra_env=s.env_allow)
    packages = environment.pop("packages", {})
    frameworks = {name: packages.get(name) for name in ("torch", "lightning", "pytorch-lightning",
                                                       "scikit-learn", "xgboost", "xgboost-cpu", "numpy",
                                                       "pandas", "psutil", "nvidia-ml-py", "xxhash")}
    return {
        "hardware": capture_hardware(),
        "environment": environment,
        "frameworks": frameworks,
        "source": {"cwd": source["cwd"], "git": source["git"],
                   "diff_bytes": len(texts.get("source/git.diff", "").encode())},
        "capture": {"enabled": s.enabled, "system_metrics_interval_s": s.system_metrics,
                    "packages": s.packages, "source": s.source, "entry_script": s.entry_script},
        "store": store_health(store_path, verify=verify),
    }


def _gb(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def render(data: dict[str, Any]) -> str:
    hw, env, src, st, cap = data["hardware"], data["environment"], data["source"], data["store"], data["capture"]
    lines = ["autotrack doctor", ""]
    lines.append("Hardware")
    lines.append(f"  host      {hw['hostname']}  ({hw['os_release'] or hw['os']}, kernel {hw['kernel']}, {hw['architecture']})")
    cores = f"{hw['cpu_physical_cores']} physical / {hw['cpu_logical_cores']} logical cores"
    if hw.get("cpu_usable_cores") not in (None, hw["cpu_logical_cores"]):
        cores += f", {hw['cpu_usable_cores']} usable"
    if hw.get("cpu_quota_cores"):
        cores += f", cgroup quota {hw['cpu_quota_cores']} cores"
    lines.append(f"  cpu       {hw['cpu_model']}, {cores}")
    ram = _gb(hw["ram_total_bytes"])
    if hw.get("memory_limit_bytes"):
        ram += f" (container limit {_gb(hw['memory_limit_bytes'])})"
    lines.append(f"  ram       {ram}")
    if hw["gpus"]:
        lines.append(f"  gpus      {hw['gpu_count']} (driver {hw['gpu_driver_version']}, CUDA driver {hw['cuda_driver_version']};"
                     f" this process may use {hw['visible_gpus']})")
        for g in hw["gpus"]:
            lines.append(f"    [{g['index']}] {g['name']}, {_gb(g['memory_total_bytes'])}, sm {g['compute_capability']},"
                         f" power limit {g['power_limit_w']} W, MIG {'on' if g['mig_mode'] else 'off'},"
                         f" PCIe gen {g['pcie_generation']} x{g['pcie_width']}")
    else:
        lines.append(f"  gpus      none: {hw.get('gpu_reason', 'unknown')}")
    if hw.get("torch"):
        t = hw["torch"]
        lines.append(f"  torch     {t['version']} (CUDA runtime {t.get('cuda_runtime')}, cuDNN {t.get('cudnn_version')})")
    lines += ["", "Environment"]
    lines.append(f"  python    {env['python_version']} ({env['python_implementation']}) {env['python_executable']}")
    where = f"conda env {env['conda_env']}" if env.get("conda_env") else ("virtualenv" if env["virtualenv"] else "system/pyenv prefix")
    lines.append(f"  prefix    {env['python_prefix']} ({where})")
    lines.append(f"  packages  {env.get('package_count', 0)} installed distributions would be recorded")
    present = ", ".join(f"{k} {v}" for k, v in data["frameworks"].items() if v)
    lines.append(f"  relevant  {present or 'none'}")
    lines.append(f"  env vars  {', '.join(env['env']) or 'none of the allow-list is set'}")
    lines += ["", "Source"]
    git = src["git"]
    lines.append(f"  cwd       {src['cwd']}")
    if git.get("available"):
        state = "dirty" if git.get("dirty") else "clean"
        lines.append(f"  git       {git.get('root')}: {git.get('branch') or 'detached'} @ {(git.get('commit') or 'no commit')[:12]}, {state}"
                     f" ({git.get('changed_files', 0)} changed, {len(git.get('untracked_files', []))} untracked,"
                     f" diff {src['diff_bytes']} bytes)")
        lines.append(f"  remote    {git.get('remote_url') or 'none'}")
    else:
        lines.append(f"  git       not recorded: {git.get('reason') or git.get('error')}")
    lines += ["", "Capture"]
    lines.append(f"  at start  {'on' if cap['enabled'] else 'OFF (AUTOTRACK_CAPTURE=0)'}")
    interval = cap["system_metrics_interval_s"]
    lines.append(f"  sampler   {'every %g s' % interval if interval else 'off'}")
    lines += ["", "Store"]
    lines.append(f"  location  {st['path']}")
    if not st["exists"]:
        lines.append(f"  state     {st['note']} ({'writable' if st['writable'] else 'NOT writable'})")
    else:
        lines.append(f"  database  {_gb(st.get('db_bytes'))}, schema v{st.get('schema_version')}"
                     f"{'' if st.get('schema_current') else ' (needs migration)'}, integrity {st.get('integrity')}")
        runs = ", ".join(f"{n} {k}" for k, n in sorted(st.get("runs_by_status", {}).items()))
        lines.append(f"  runs      {st.get('runs', 0)} in {st.get('experiments', 0)} experiments ({runs or 'none'})")
        lines.append(f"  artifacts {st['artifact_files']} files, {_gb(st['artifact_bytes'])}")
        if "damaged" in st:
            if st["damaged"]:
                lines.append(f"  damaged   {len(st['damaged'])} item(s):")
                lines += [f"    {item}" for item in st["damaged"][:50]]
            else:
                lines.append("  verified  every metric chunk, section and stored blob matches its checksum")
        lines.append(f"  health    {'OK' if st['healthy'] else 'PROBLEM (see above)'}")
    return "\n".join(lines)


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--verify", is_flag=True, help="Also check every metric chunk, section and blob against its checksum.")
@click.option("--store", "store_path", envvar=["AUTOTRACK_STORE", "AUTOTRACK_DIR"], default="autotrack-runs",
              show_default=True, help="Store folder or postgresql:// URL to check (also $AUTOTRACK_STORE, $AUTOTRACK_DIR).")
def doctor_command(as_json: bool, verify: bool, store_path: str) -> None:
    """Show what autotrack would capture on this machine and check the store."""
    data = report(store_path, verify=verify)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(render(data))
    if data["store"].get("exists") and not data["store"].get("healthy"):
        sys.exit(1)
