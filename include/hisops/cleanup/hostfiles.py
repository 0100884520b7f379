"""Host file cleanup: inventory ``cleanup:`` rules applied through the command runner.

Streamed end to end: the host lists matching files with ``find -printf`` (NUL-separated), the
worker reads the stream chunk by chunk, decides file by file and acts in batches of at most
``BATCH_FILES`` files (one shell script per batch that ``cd``s into each directory without
following symlinks and re-checks every file before deleting or gzipping it). Memory stays flat:
no listing is held, only the current batch and, for ``keep_newest``, the newest N files of the
directories on the current path.

Safety, in order: the inventory refuses rules overlapping protected paths; at run time the
rule's root must resolve to itself (no symlink on the way) and must not overlap the real path of
any protected path (configured, or reported by the database server); ``find -P -xdev`` never
follows symlinks nor crosses into another filesystem; files open for writing are skipped.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from hisops.cleanup import hostscript as hs
from hisops.cleanup import results as r
from hisops.cleanup.results import FileAction, StepResult
from hisops.inventory.cleanup import CleanupRule, Protected, glob_root, overlaps
from hisops.targets.errors import TargetUnreachable

if TYPE_CHECKING:
    from hisops.inventory.models import Host, Inventory
    from hisops.targets.runner import CommandRunner

log = logging.getLogger(__name__)

BATCH_FILES = 500
RECORD_BATCH = 1000
LISTING_TIMEOUT = 6 * 3600


@dataclass(frozen=True)
class Candidate:
    path: str
    size: int
    mtime: float
    nlink: int

    @property
    def parent(self) -> str:
        return self.path.rsplit("/", 1)[0] or "/"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]


class FileSink:
    """Collects FileActions and hands them to ``flush`` in batches (catalog inserts)."""

    def __init__(
        self,
        flush: Callable[[list[dict]], None] | None,
        echo: Callable[[str], None] | None,
        batch: int = RECORD_BATCH,
    ) -> None:
        self._flush, self._echo, self._batch = flush, echo, batch
        self._rows: list[dict] = []
        self.count = 0

    def add(self, action: FileAction) -> None:
        self.count += 1
        if self._echo is not None:
            self._echo(action.line())
        if self._flush is not None:
            self._rows.append(action.row())
            if len(self._rows) >= self._batch:
                self.flush()

    def flush(self) -> None:
        if self._rows and self._flush is not None:
            self._flush(self._rows)
        self._rows = []


@dataclass
class HostContext:
    host_id: str
    runner: CommandRunner
    protected: list[Protected]
    dry_run: bool
    sink: FileSink
    now: float = 0.0
    method: str = hs.NONE
    writers: frozenset[str] = frozenset()
    real_protected: list[tuple[str, Protected]] = field(default_factory=list)


# --- the host ------------------------------------------------------------------------------------


def clean_host(
    inventory: Inventory,
    host: Host,
    runner: CommandRunner,
    *,
    dry_run: bool,
    sink: FileSink,
    extra_protected: Iterable[Protected] = (),
) -> list[StepResult]:
    """Every rule of one host; an unreachable host is one failed step per rule (never raises)."""
    protected = inventory.protected_paths(inventory.host_loc(host.id)) + list(extra_protected)
    ctx = HostContext(host.id, runner, protected, dry_run, sink)
    try:
        prepare(ctx)
    except TargetUnreachable as exc:
        return [
            StepResult("host", host.id, rule.name, "failed", f"{r.UNREACHABLE}: {exc}")
            for rule in host.cleanup
        ]
    steps = []
    for rule in host.cleanup:
        try:
            steps.append(
                clean_rule(ctx, rule, [str(inventory.resolve_path(p)) for p in rule.paths])
            )
        except TargetUnreachable as exc:
            steps.append(
                StepResult("host", host.id, rule.name, "failed", f"{r.UNREACHABLE}: {exc}")
            )
    sink.flush()
    return steps


def _stream_tokens(runner: CommandRunner, command: str, timeout: float = LISTING_TIMEOUT):
    stream = runner.open_stream(command, timeout=timeout)
    return stream, hs.tokens(stream.chunks())


def prepare(ctx: HostContext) -> None:
    """Host clock, real paths of the protected paths, the open-for-writing snapshot."""
    stream, toks = _stream_tokens(
        ctx.runner, hs.prelude_command(p.path for p in ctx.protected), 120
    )
    try:
        pre = hs.parse_prelude(toks)
    finally:
        stream.finish()
    ctx.now = pre.now
    for p in ctx.protected:
        ctx.real_protected.append((p.path, p))
        real = pre.real_protected.get(p.path)
        if real and real != p.path:
            ctx.real_protected.append((real, p))


def _refresh_writers(ctx: HostContext, root: str) -> None:
    stream, toks = _stream_tokens(ctx.runner, hs.writers_command([root]), 120)
    try:
        pre = hs.parse_prelude(toks)
    finally:
        stream.finish()
    ctx.method, ctx.writers = pre.method, pre.writers


# --- one rule -------------------------------------------------------------------------------------


def clean_rule(ctx: HostContext, rule: CleanupRule, patterns: list[str]) -> StepResult:
    step = StepResult(
        "host",
        ctx.host_id,
        rule.name,
        "dry_run" if ctx.dry_run else "ok",
        details={"action": rule.action, "paths": patterns, "skipped_by_reason": {}},
    )
    reasons: Counter[str] = Counter()
    for pattern in patterns:
        if not _one_glob(ctx, rule, pattern, step, reasons):
            break
    step.details["skipped_by_reason"] = dict(reasons)
    step.details["writers_check"] = ctx.method
    step.details["filesystems"] = _filesystems(ctx.runner, patterns)
    return step


def _filesystems(runner: CommandRunner, patterns: list[str]) -> list[dict]:
    """Mount point and used % of each rule root (for "freed nothing on a full filesystem")."""
    roots = sorted({glob_root(p) for p in patterns})
    res = runner.run(
        "for p in "
        + " ".join(hs.q(p) for p in roots)
        + '; do [ -d "$p" ] && df -P -k -- "$p" | tail -n 1; done',
        timeout=60,
    )
    out = []
    for line in res.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[4].rstrip("%").isdigit():
            out.append({"mount": " ".join(fields[5:]), "used_pct": float(fields[4].rstrip("%"))})
    return out


def _one_glob(
    ctx: HostContext, rule: CleanupRule, pattern: str, step: StepResult, reasons: Counter[str]
) -> bool:
    """False when the rule must stop (protected path hit, symlinked root)."""
    root = glob_root(pattern)
    min_age = None if rule.keep_newest else rule.older_than_days * 1440
    larger = None if rule.keep_newest else rule.larger_than
    stream, toks = _stream_tokens(
        ctx.runner, hs.listing_command(pattern, root, min_age_minutes=min_age, larger_than=larger)
    )
    try:
        real = _real_root(toks)
        if not _root_allowed(ctx, root, real, step):
            return step.state not in ("protected", "skipped")
        _refresh_writers(ctx, real)
        batch = _Batch(ctx, rule, step, reasons, real)
        matcher = hs.glob_regex(pattern)
        found = (c for c in _candidates(toks) if matcher.match(c.path))
        for cand in _keep_newest(found, rule.keep_newest):
            batch.offer(cand)
        batch.run()
        result = stream.finish()
    finally:
        stream.close()  # an early exit must not wait for a find still writing
    if result.rc not in (0, 1) or result.stderr.strip():
        step.note(f"find: {result.stderr.strip()[:500] or f'exit {result.rc}'}")
    return True


def _real_root(toks: Iterator[bytes]) -> str:
    tag = next(toks, None)
    return hs.text(next(toks, b"")) if tag == b"R" else ""


def _root_allowed(ctx: HostContext, root: str, real: str, step: StepResult) -> bool:
    if not real:
        step.note(f"{r.ROOT_MISSING}: {root}")
        return False
    if real != str(PurePosixPath(root)):
        step.state, step.reason = "skipped", f"{r.ROOT_SYMLINK}: {root} → {real}"
        return False
    for path, p in ctx.real_protected:
        if overlaps(real, path):
            step.state = "protected"
            step.reason = f"{r.PROTECTED_HIT}: {root} ↔ {p.path} ({p.label})"
            return False
    return True


def _candidates(toks: Iterator[bytes]) -> Iterator[Candidate]:
    for tag in toks:
        if tag != b"F":
            continue
        mtime, size, nlink, path = (next(toks) for _ in range(4))
        yield Candidate(hs.text(path), int(size), float(mtime), int(nlink))


def _keep_newest(found: Iterator[Candidate], keep: int) -> Iterator[Candidate]:
    """Drop the newest ``keep`` files of every directory; the rest pass on.

    find walks depth first, so once a file outside a directory arrives, that directory is
    complete: only the directories on the current path hold their newest-N heaps.
    """
    if keep <= 0:
        yield from found
        return
    stack: list[tuple[str, list[tuple[float, str, Candidate]]]] = []
    for cand in found:
        d = cand.parent
        while stack and not (d == stack[-1][0] or d.startswith(stack[-1][0].rstrip("/") + "/")):
            stack.pop()  # complete: what is left in its heap are the newest N, kept
        if not stack or stack[-1][0] != d:
            stack.append((d, []))
        heap = stack[-1][1]
        heapq.heappush(heap, (cand.mtime, cand.path, cand))
        if len(heap) > keep:
            yield heapq.heappop(heap)[2]


# --- deciding and acting --------------------------------------------------------------------------


def _stamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class _Batch:
    def __init__(
        self,
        ctx: HostContext,
        rule: CleanupRule,
        step: StepResult,
        reasons: Counter[str],
        root: str,
    ) -> None:
        self.ctx, self.rule, self.step, self.reasons, self.root = ctx, rule, step, reasons, root
        self.pending: list[Candidate] = []

    def _action(
        self, cand: Candidate, outcome: r.FileOutcome, reason: str | None = None, freed: int = 0
    ) -> None:
        self.ctx.sink.add(
            FileAction(
                self.ctx.host_id,
                self.rule.name,
                cand.path,
                cand.size,
                _stamp(cand.mtime),
                self.rule.action,
                outcome,
                reason,
                freed,
            )
        )
        if outcome == "skipped":
            self.step.skipped += 1
            self.reasons[reason or "?"] += 1
        elif outcome == "failed":
            self.step.failed += 1
            self.step.note(f"{cand.path}: {reason}")
        else:
            self.step.files += 1
            self.step.bytes_freed += freed

    def _skip_reason(self, cand: Candidate) -> str | None | bool:
        """A reason to skip, None to act, False when the file is no candidate at all."""
        rule, ctx = self.rule, self.ctx
        if rule.action == "compress" and cand.name.endswith(".gz"):
            return False
        if ctx.now - cand.mtime <= rule.older_than_days * 86400:
            return False
        if rule.larger_than is not None and cand.size <= rule.larger_than:
            return False
        if not hs.is_utf8(cand.path):
            return r.NOT_UTF8
        if ctx.method == hs.NONE:
            return r.WRITERS_UNKNOWN
        if cand.path in ctx.writers:
            return r.OPEN_FOR_WRITING
        if cand.nlink > 1:
            return r.HARD_LINKED
        return None

    def offer(self, cand: Candidate) -> None:
        reason = self._skip_reason(cand)
        if reason is False:
            return
        if reason:
            self._action(cand, "skipped", str(reason))
            return
        if self.ctx.dry_run:
            planned = "would_compress" if self.rule.action == "compress" else "would_delete"
            self._action(cand, planned, None, 0 if self.rule.action == "compress" else cand.size)
            return
        self.pending.append(cand)
        if len(self.pending) >= BATCH_FILES:
            self.run()

    def run(self) -> None:
        if not self.pending:
            return
        todo, self.pending = self.pending, []
        _refresh_writers(self.ctx, self.root)  # second look right before acting
        groups: dict[str, list[Candidate]] = {}
        for cand in todo:
            if self.ctx.method == hs.NONE or cand.path in self.ctx.writers:
                self._action(
                    cand,
                    "skipped",
                    r.WRITERS_UNKNOWN if self.ctx.method == hs.NONE else r.OPEN_FOR_WRITING,
                )
            else:
                groups.setdefault(cand.parent, []).append(cand)
        if groups:
            self._execute(groups)

    def _execute(self, groups: dict[str, list[Candidate]]) -> None:
        command = hs.action_command(
            {d: [c.name for c in cs] for d, cs in groups.items()},
            self.rule.action,
            min_age_minutes=self.rule.older_than_days * 1440,
            larger_than=self.rule.larger_than,
        )
        stream, toks = _stream_tokens(self.ctx.runner, command, 3600)
        try:
            outcome = _parse_action(toks)
        finally:
            stream.finish()
        for d, cands in groups.items():
            self._settle(d, cands, outcome)

    def _settle(self, d: str, cands: list[Candidate], out: _ActionOutput) -> None:
        if d in out.moved or d not in out.entered:
            for cand in cands:
                self._action(cand, "skipped", r.DIR_MOVED)
            return
        for cand in cands:
            key = (d, cand.name)
            if key not in out.touched:
                self._action(cand, "skipped", r.CHANGED)
            elif key in out.remaining:
                self._action(cand, "failed", _error_for(cand.name, out.errors.get(d, "")))
            elif self.rule.action == "compress":
                gz = out.gz_sizes.get(key)
                self._action(cand, "compressed", None, max(0, out.touched[key] - (gz or 0)))
            else:
                self._action(cand, "deleted", None, out.touched[key])


@dataclass
class _ActionOutput:
    entered: set[str] = field(default_factory=set)
    moved: set[str] = field(default_factory=set)
    touched: dict[tuple[str, str], int] = field(default_factory=dict)  # size at action time
    remaining: set[tuple[str, str]] = field(default_factory=set)
    gz_sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _parse_action(toks: Iterator[bytes]) -> _ActionOutput:
    out, d = _ActionOutput(), ""
    for tag in toks:
        if tag == b"C":
            d = hs.text(next(toks))
            out.entered.add(d)
        elif tag == b"Q":
            out.moved.add(hs.text(next(toks)))
        elif tag == b"T":
            size, name = int(next(toks)), hs.text(next(toks))
            out.touched[(d, name.removeprefix("./"))] = size
        elif tag == b"X":
            out.remaining.add((d, hs.text(next(toks))))
        elif tag == b"Z":
            size, name = int(next(toks)), hs.text(next(toks))
            out.gz_sizes[(d, name.removeprefix("./").removesuffix(".gz"))] = size
        elif tag == b"E":
            out.errors[d] = hs.text(next(toks))
    return out


def _error_for(name: str, errors: str) -> str:
    for line in errors.splitlines():
        if name in line:
            return line.strip()[:300]
    return errors.strip()[:300] or "未变化 file still there"
