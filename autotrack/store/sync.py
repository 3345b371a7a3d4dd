"""``autotrack sync``: copy a store (usually the local one) into another (usually the team store).

What it guarantees:

* **Same runs**: ids, names, experiments, parents, statuses, start/end times, owner (pid, host),
  heartbeat, errors, notes, degraded flags, params, tags, sections, artifacts (with their bytes).
* **Idempotent**: per run and metric key the target's point count says how many points it already
  has; only the points after that are copied. Params, tags and sections are upserts; an artifact
  is added only when the target lacks one with the same name, sha256 and time.
* **Resumable**: every write is one transaction, blob bytes go up before the record that points
  to them, and a run's end status is written last; a sync killed at any point leaves a prefix that
  the next sync completes (until then the run reads ``crashed`` there, never ``finished``).
* **Incremental**: a run still being written is copied as far as it got; the next sync adds the
  points logged since.
* **Concurrent syncs are safe**: each run is copied under :meth:`Backend.copy_lock` on the
  target, and both sides are read under it, so two syncs of one run take turns.
* **Model versions** of the copied runs are registered in the target under the same name, with
  their bytes, creation time, user and host; the target numbers them (its own numbering is the
  one that counts: other people register there too). A version already there (same name, run,
  artifact and sha256) is not registered again. Aliases are not copied: moving ``champion`` in
  the team store is a decision made there (``autotrack models alias --store ...``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .._errors import StoreError
from ._records import (
    ArtifactAdd,
    ArtifactUpdate,
    Degraded,
    EndRun,
    Heartbeat,
    NewModelVersion,
    NewRun,
    Note,
    Owner,
    Params,
    Points,
    RemoveTags,
    Rename,
    RunQuery,
    RunRow,
    Section,
    Tags,
)
from .base import Backend

#: Points per write (one transaction each).
BATCH_POINTS = 100_000


@dataclass
class SyncReport:
    runs_created: int = 0
    runs_updated: int = 0
    points: int = 0
    artifacts: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    model_versions: int = 0
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"{self.runs_created} runs created, {self.runs_updated} updated, {self.points} points, "
                f"{self.artifacts} artifacts ({self.blobs} blobs, {self.blob_bytes} bytes) copied")
        if self.model_versions:
            text += f", {self.model_versions} model versions registered"
        if self.skipped:
            text += "; skipped: " + "; ".join(self.skipped)
        return text


def sync(source: Backend | str, target: Backend | str, *, run_ids: Sequence[str] | None = None,
         progress: Callable[[str], None] | None = None) -> SyncReport:
    """Copy every run of ``source`` (or those in ``run_ids``) into ``target``; see the module doc."""
    from .._run import store_for

    src = store_for(source) if not isinstance(source, Backend) else source
    dst = store_for(target) if not isinstance(target, Backend) else target
    if src.location == dst.location:
        from .._errors import InvalidArgumentError

        raise InvalidArgumentError("target", dst.location, "pass a store other than the source")
    report = SyncReport()
    if not src.exists():
        return report
    dst.initialise()
    if not dst.writable:
        raise StoreError(f"cannot sync into {dst.location}: this connection may only read it")
    ids = list(run_ids) if run_ids is not None else [r.id for r in src.find_runs(RunQuery(order=[("start", True)]))]
    for run_id in ids:
        # another sync of this run into the same store waits here; both sides are read under the
        # lock, so the second sees what the first wrote (and a status newer than its own start)
        with dst.copy_lock(run_id):
            here, there = src.get_runs([run_id]), dst.get_runs([run_id])
            if not here:
                report.skipped.append(f"{run_id}: not in {src.location}")
                continue
            _sync_run(src, dst, here[0], there[0] if there else None, report)
        if progress is not None:
            progress(run_id)
    _sync_model_versions(src, dst, set(ids), report)
    return report


def _sync_model_versions(src: Backend, dst: Backend, run_ids: set[str], report: SyncReport) -> None:
    """Register in ``dst`` the versions of ``src`` made from the copied runs that it lacks."""
    for name in src.model_names():
        versions = [v for v in src.model_versions(name) if v.run_id in run_ids and v.run_deleted is None]
        if not versions:
            continue
        # one lock per model name: two syncs must not both find a version missing and register it
        with dst.copy_lock(f"model-{name}"):
            there = {(v.run_id, v.artifact, v.sha256) for v in dst.model_versions(name)}
            for v in versions:
                if (v.run_id, v.artifact, v.sha256) in there:
                    continue
                if not dst.blobs.exists(v.sha256):
                    _copy_blob(src, dst, v.sha256, report)
                dst.register_version(NewModelVersion(v.name, v.run_id, v.artifact, v.sha256, v.size, v.framework,
                                                     v.meta, v.tags, v.description, v.created, v.user, v.host))
                report.model_versions += 1


def _sync_run(src: Backend, dst: Backend, row: RunRow, there: RunRow | None, report: SyncReport) -> None:
    rid = row.id
    head: list = []
    if there is None:
        head.append(NewRun(rid, row.name, row.experiment, row.parent_id, row.start_time,
                           Owner(row.pid or 0, row.host or "", row.proc_start, row.identity)))
        report.runs_created += 1
    else:
        report.runs_updated += 1
        if there.name != row.name:
            head.append(Rename(rid, row.name))
    params = src.params([rid])[rid]
    if params:
        head.append(Params(rid, tuple((k, v, n) for k, (v, n) in sorted(params.items()))))
    tags = src.tags([rid])[rid]
    old_tags = dst.tags([rid])[rid] if there is not None else {}
    if tags and tags != {k: old_tags.get(k) for k in tags}:
        head.append(Tags(rid, tuple(sorted(tags.items()))))
    gone = tuple(sorted(set(old_tags) - set(tags)))
    if gone:
        head.append(RemoveTags(rid, gone))
    old_sections = dst.sections(rid) if there is not None else {}
    for name, value in src.sections(rid).items():
        if old_sections.get(name) != value:
            head.append(Section(rid, name, value))
    if row.note is not None and (there is None or there.note != row.note):
        head.append(Note(rid, row.note))
    if row.degraded is not None and (there is None or there.degraded != row.degraded):
        head.append(Degraded((rid,), row.degraded))
    if head:
        dst.write(head)
    _sync_artifacts(src, dst, rid, report)
    _sync_points(src, dst, rid, report)
    # the status last: a run reads finished in the target only once everything of it is there
    tail: list = []
    if row.status == "running":
        if there is not None and there.status != "running":
            dst.claim_run(rid, Owner(row.pid or 0, row.host or "", row.proc_start, row.identity), lambda _: False)
        tail.append(Heartbeat((rid,), row.heartbeat or row.start_time))
    elif there is None or (there.status, there.end_time, there.error) != (row.status, row.end_time, row.error):
        if there is None:
            tail.append(Heartbeat((rid,), row.heartbeat or row.start_time))
        tail.append(EndRun(rid, row.status, row.end_time or row.start_time, row.error))
    if tail:
        dst.write(tail)


def _sync_artifacts(src: Backend, dst: Backend, rid: str, report: SyncReport) -> None:
    present = {(a.name, a.sha256, a.created): a for a in dst.artifacts(rid)}
    for a in src.artifacts(rid):
        have = present.get((a.name, a.sha256, a.created))
        if have is None:
            if a.stored and a.sha256 and not dst.blobs.exists(a.sha256):
                _copy_blob(src, dst, a.sha256, report)
            dst.write([ArtifactAdd(rid, a.name, a.kind, a.sha256, a.size, a.step, a.path, a.stored, a.meta, a.created)])
            report.artifacts += 1
            if a.deleted is not None:
                dst.write([ArtifactUpdate(rid, a.name, None, a.deleted)])
        elif (have.meta, have.deleted) != (a.meta, a.deleted):
            meta = a.meta if a.meta is not None and a.meta != have.meta else None
            dst.write([ArtifactUpdate(rid, a.name, meta, a.deleted)])


def _copy_blob(src: Backend, dst: Backend, sha: str, report: SyncReport) -> None:
    local = src.blobs.local_path(sha)
    if local is not None:
        blob = dst.blobs.put_file(local)
    else:
        blob = dst.blobs.put_bytes(src.blobs.read(sha))
    if blob.sha256 != sha:
        raise StoreError(f"the blob {sha[:12]} in {src.blobs.location} does not match its sha256; not copied")
    report.blobs += 1
    report.blob_bytes += blob.size


def _sync_points(src: Backend, dst: Backend, rid: str, report: SyncReport) -> None:
    have = {key: s.count for key, s in dst.stats([rid])[rid].items()}
    for key, stats in src.stats([rid])[rid].items():
        done = have.get(key, 0)
        if stats.count <= done:
            continue
        arrays = src.metric_since(rid, key, done)
        if arrays is None:
            continue
        steps, values, times = arrays
        for start in range(0, len(steps), BATCH_POINTS):
            end = start + BATCH_POINTS
            dst.write([Points(rid, key, steps[start:end].tolist(), values[start:end].tolist(), times[start:end].tolist())])
            report.points += len(steps[start:end])
