"""Log checks (日志巡检): count new lines per pattern, on the host, in bounded memory.

How a scan goes, per host (local or SSH: the same sh code through the `CommandRunner`):

1. *Listing* (a snippet appended to the host-check script, `listing_snippet`): each configured
   glob is expanded on the host; every regular file is reported with inode and size.
2. *Planning* (`plan_read`, pure Python): against the remembered (inode, offset) of each path —
   unknown path → read from 0; same inode, size ≥ offset → read from the offset; other inode →
   the file was rotated: read the new file from 0, and the rest of the old file (found by its
   inode in the same directory, e.g. ``server.log.1``) from the old offset; size < offset →
   truncated (copytruncate): read from 0.
3. *Scanning* (`scan_script`): per file, ``dd`` seeks to the start offset (lseek, no read),
   ``grep -a -b -E`` streams the rest and passes on only lines matching any pattern, with
   their byte offset; a small ``awk`` program drops lines at or after the end bound and counts
   lines per pattern, keeping the last 5 sample lines (cut at 400 bytes). Only counts and
   samples travel back; nothing is copied whole, memory is flat (grep's buffer), and GNU grep
   does the heavy lifting (bench/log_scan.py: ~1.1 s of CPU per GB here; a Python
   chunked-regex scan needed ~10x the CPU and a single awk program over every line ~2.5x).
4. The end bound is the last complete line at listing time: a line being written while we scan
   is read whole next time, never counted twice or cut in two.

Patterns are Python regexes in the inventory; `to_ere` translates them to POSIX ERE for
grep/awk (literals, classes, ``\\d \\s \\w``, groups, alternation, repeats — expanded, because
mawk has no ``{m,n}`` — and ``(?i)``). Patterns it cannot translate faithfully (``\\b``,
lookarounds, backreferences) give a check_error finding naming the pattern, not a wrong count.

Host requirements: POSIX sh, dd, tail/head -c, awk (mawk or gawk) and GNU grep (``-b``); a
grep without ``-b`` makes the scan fail visibly (check_error per pattern, offsets kept).

Sample lines are masked (passwords, ID-card numbers, phone numbers) before they leave this module.
A glob that matches no file is a *warn* finding ``log.files``: the log the inventory promises
is gone or the path is wrong — ops must look, but it is not a failure of the check itself.
"""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hisops.catalog.records import FindingRecord
from hisops.inspect.findings import Target, fmt_bytes, mask_sensitive, plural

try:  # Python 3.11+: sre_parse moved to re._parser
    from re import _constants as C  # type: ignore[attr-defined]
    from re import _parser as P  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]

MAX_SAMPLES = 5
SAMPLE_BYTES = 400
BOUNDARY_WINDOW = 65536  # bytes read back from the end bound to find the last complete line
MAX_EXPANDED_REPEAT = 40
CRITICAL_NAMES = frozenset(
    {"fatal", "panic", "oom", "critical", "crit", "emerg", "emergency", "alert"}
)

Offsets = dict[str, tuple[int | None, int]]


# --- Python regex → POSIX ERE --------------------------------------------------------------------


class Untranslatable(ValueError):
    """The Python regex uses a feature grep/awk ERE cannot express faithfully."""


_ERE_SPECIAL = set(".[]()*+?{}|^$\\")
_CATEGORIES = {
    C.CATEGORY_DIGIT: ("0-9", False),
    C.CATEGORY_NOT_DIGIT: ("0-9", True),
    C.CATEGORY_SPACE: ("[:space:]", False),
    C.CATEGORY_NOT_SPACE: ("[:space:]", True),
    C.CATEGORY_WORD: ("[:alnum:]_", False),
    C.CATEGORY_NOT_WORD: ("[:alnum:]_", True),
}


def to_ere(pattern: str) -> str:
    """POSIX ERE (no intervals, no back references) matching the same lines as the Python regex."""
    parsed = P.parse(pattern)
    if parsed.state.flags & re.VERBOSE:
        raise Untranslatable("verbose (?x) patterns are not supported")
    return _seq(list(parsed), bool(parsed.state.flags & re.IGNORECASE))


def _seq(items: list[tuple[Any, Any]], icase: bool) -> str:
    return "".join(_item(op, av, icase) for op, av in items)


def _literal(code: int, icase: bool) -> str:
    ch = chr(code)
    if icase and ch.lower() != ch.upper() and len(ch.lower()) == len(ch.upper()) == 1:
        return f"[{ch.lower()}{ch.upper()}]"
    if ch == "\n":
        raise Untranslatable("patterns match within one line; a newline never occurs")
    return "\\" + ch if ch in _ERE_SPECIAL else ch


def _item(op: Any, av: Any, icase: bool) -> str:
    if op is C.LITERAL:
        return _literal(av, icase)
    if op is C.NOT_LITERAL:
        return "[^" + _class_members([(C.LITERAL, av)], icase) + "]"
    if op is C.ANY:
        return "."
    if op is C.IN:
        return _charset(av, icase)
    if op is C.CATEGORY:
        body, negate = _CATEGORIES[av]
        return f"[{'^' if negate else ''}{body}]"
    if op is C.AT:
        return _anchor(av)
    if op is C.SUBPATTERN:
        _group, add, delete, sub = av
        inner = bool((icase or add & re.IGNORECASE) and not delete & re.IGNORECASE)
        return "(" + _seq(list(sub), inner) + ")"
    if op is C.BRANCH:
        return "(" + "|".join(_seq(list(alt), icase) for alt in av[1]) + ")"
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):  # lazy or greedy: the same lines match
        return _repeat(av, icase)
    raise Untranslatable(f"{str(op).lower()} is not supported by grep/awk (ERE)")


def _anchor(code: Any) -> str:
    if code in (C.AT_BEGINNING, C.AT_BEGINNING_STRING, C.AT_BEGINNING_LINE):
        return "^"
    if code in (C.AT_END, C.AT_END_STRING, C.AT_END_LINE):
        return "$"
    raise Untranslatable(
        r"word boundaries (\b, \B) are not supported; spell the context out instead"
    )


def _atom(items: list[tuple[Any, Any]], icase: bool) -> str:
    text = _seq(items, icase)
    single = len(items) == 1 and items[0][0] in (
        C.LITERAL,
        C.NOT_LITERAL,
        C.ANY,
        C.IN,
        C.CATEGORY,
        C.SUBPATTERN,
        C.BRANCH,
    )
    return text if single else f"({text})"


def _repeat(av: Any, icase: bool) -> str:
    low, high, sub = av
    atom = _atom(list(sub), icase)
    unbounded = high == C.MAXREPEAT
    if low > MAX_EXPANDED_REPEAT or (not unbounded and high > MAX_EXPANDED_REPEAT):
        raise Untranslatable(f"repeat {{{low},{high}}} too large to expand")
    if unbounded:
        return atom + "*" if low == 0 else atom * (low - 1) + atom + "+"
    return atom * low + (atom + "?") * (high - low)


def _charset(items: list[tuple[Any, Any]], icase: bool) -> str:
    negate = bool(items) and items[0][0] is C.NEGATE
    members = _class_members(items[1:] if negate else items, icase)
    return f"[{'^' if negate else ''}{members}]"


def _class_members(items: list[tuple[Any, Any]], icase: bool) -> str:
    """Members of a bracket expression, ordered so ']' is first and '-' is last (POSIX rules)."""
    chars: set[str] = set()
    parts: list[str] = []
    for op, av in items:
        if op is C.LITERAL:
            ch = chr(av)
            chars.update({ch, ch.lower(), ch.upper()} if icase else {ch})
        elif op is C.RANGE:
            lo, hi = av
            parts.append(_range(lo, hi))
            if icase:
                parts += _case_ranges(lo, hi)
        elif op is C.CATEGORY and not _CATEGORIES[av][1]:
            parts.append(_CATEGORIES[av][0])
        else:
            raise Untranslatable(f"{str(op).lower()} inside [...] is not supported")
    if "\\" in chars:
        raise Untranslatable("a backslash inside [...] means different things to grep and awk")
    if "[" in chars:
        raise Untranslatable("'[' inside [...] is not supported")
    head = "]" if "]" in chars else ""
    tail = "-" if "-" in chars else ""
    caret_last = "^" if "^" in chars else ""
    middle = "".join(sorted(chars - {"]", "-", "^"}))
    return head + middle + "".join(parts) + caret_last + tail


def _range(lo: int, hi: int) -> str:
    if chr(lo) in "]-^\\[" or chr(hi) in "]-^\\[":
        raise Untranslatable("ranges starting or ending in ] - ^ \\ [ are not supported")
    return f"{chr(lo)}-{chr(hi)}"


def _case_ranges(lo: int, hi: int) -> list[str]:
    out = []
    for a, b in ((max(lo, 97), min(hi, 122)), (max(lo, 65), min(hi, 90))):
        if a <= b:
            out.append(f"{chr(a).swapcase()}-{chr(b).swapcase()}")
    return out


# --- listing -----------------------------------------------------------------------------------

_STAT_SH = r"""st() { stat -c '%i %s' -- "$1" 2>/dev/null ||
  ls -ldin -- "$1" 2>/dev/null | awk '{ print $1, $6 }'; }
# lst INDEX WORDS...: one record per regular file matched by the (already expanded) glob
lst() {
  i=$1; shift; n=0
  for f in "$@"; do
    [ -f "$f" ] || continue; n=$((n + 1))
    if [ -r "$f" ]; then
      info=$(st "$f"); printf 'logf\t%s\t%s\t%s\t%s\n' "$i" "${info% *}" "${info#* }" "$f"
    else printf 'logerr\t%s\t%s\tnot readable\n' "$i" "$f"; fi
  done
  [ "$n" -gt 0 ] || printf 'lognone\t%s\n' "$i"
}
"""


def glob_word(glob: str) -> str:
    """The glob as an unquoted sh word: metacharacters * ? [ ] stay
    active, everything else is escaped."""
    return "".join(ch if ch.isalnum() or ch in "*?[]/._-+,:@%" else "\\" + ch for ch in glob)


# Who reads: the machine the files live on as it names itself (machine-id, else hostname). Offsets
# are remembered per reader, so a `local: true` host read by another worker starts its own.
_READER_SH = r"""printf 'logreader\t%s\n' "$({ cat /etc/machine-id 2>/dev/null || hostname; } |
  head -n 1)"
"""


def listing_snippet(globs: list[str]) -> str:
    """sh code that lists every file matched by each glob (appended to the host-check script)."""
    if not globs:
        return ""
    return _STAT_SH + _READER_SH + "".join(f"lst {i} {glob_word(g)}\n" for i, g in enumerate(globs))


def reader_of(records: dict[str, list[list[str]]]) -> str:
    rows = records.get("logreader") or [[""]]
    return (rows[0][0] if rows[0] else "").strip()[:200]


@dataclass(frozen=True)
class Listed:
    glob_index: int
    path: str
    inode: int | None = None
    size: int = 0
    error: str | None = None


def parse_listing(records: dict[str, list[list[str]]]) -> tuple[list[Listed], set[int]]:
    """(files, indexes of globs that matched nothing) from the parsed script records."""
    files = [
        Listed(int(r[0]), r[3], int(r[1]), int(r[2]))
        for r in records.get("logf", [])
        if len(r) >= 4
    ]
    files += [Listed(int(r[0]), r[1], error=r[2]) for r in records.get("logerr", []) if len(r) >= 3]
    empty = {int(r[0]) for r in records.get("lognone", [])}
    return files, empty


# --- planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadPlan:
    path: str
    inode: int
    start: int
    end: int  # size at listing time; the scan stops at the last complete line before it
    reason: str  # new | continued | renamed (rotated file read on) | rotated | truncated
    rotated_from: tuple[int, int] | None = None  # (old inode, old offset) of the rotated-away file


Remembered = Mapping[str, tuple[int | None, int]]


def plan_reads(files: list[Listed], remembered: Remembered) -> list[ReadPlan]:
    """One plan per listed file, deciding by file identity (inode), not by name.

    A glob such as ``x.log*`` lists the rotated file too: ``x.log.1`` is the inode that was
    ``x.log`` yesterday, so it continues from yesterday's offset — counted once, not re-read
    from 0. Only when the old inode is not listed is its tail looked up beside the new file.
    """
    by_inode = {inode: offset for inode, offset in remembered.values() if inode is not None}
    listed = {f.inode for f in files}
    return [
        plan_file(f.path, f.inode or 0, f.size, remembered.get(f.path), by_inode, listed)
        for f in files
    ]


def plan_file(
    path: str,
    inode: int,
    size: int,
    previous: tuple[int | None, int] | None,
    by_inode: Mapping[int, int],
    listed: set[int | None],
) -> ReadPlan:
    if inode in by_inode:
        offset = by_inode[inode]
        if size < offset:
            return ReadPlan(path, inode, 0, size, "truncated")
        moved = previous is None or previous[0] != inode
        return ReadPlan(path, inode, offset, size, "renamed" if moved else "continued")
    if previous is not None and previous[0] is not None and previous[0] != inode:
        old_inode, old_offset = previous
        tail = (
            None if old_inode in listed else (old_inode, old_offset)
        )  # listed: read under its new name
        return ReadPlan(path, inode, 0, size, "rotated", tail)
    return plan_read(path, inode, size, previous)


def plan_read(
    path: str, inode: int, size: int, remembered: tuple[int | None, int] | None
) -> ReadPlan:
    """Where to start reading ``path`` given what the last inspection remembered."""
    if remembered is None:
        return ReadPlan(path, inode, 0, size, "new")
    old_inode, old_offset = remembered
    if old_inode is not None and old_inode != inode:
        return ReadPlan(path, inode, 0, size, "rotated", (old_inode, old_offset))
    if size < old_offset:
        return ReadPlan(path, inode, 0, size, "truncated")
    return ReadPlan(path, inode, old_offset, size, "continued")


# --- scanning ----------------------------------------------------------------------------------

_SCAN_SH = r"""LC_ALL=C; export LC_ALL
st() { stat -c '%i %s' -- "$1" 2>/dev/null ||
  ls -ldin -- "$1" 2>/dev/null | awk '{ print $1, $6 }'; }
# bound FILE START END: offset just after the last newline in [START, END) (START if none)
bound() {
  lo=$(( $3 - BW )); [ "$lo" -gt "$2" ] || lo=$2
  tail -c +$((lo + 1)) -- "$1" 2>/dev/null | head -c $(( $3 - lo )) |
    awk -v lo="$lo" -v want=$(( $3 - lo )) '{ n += length($0) + 1 } END {
      if (n == want) print lo + n; else if (NR <= 1) print lo; else print lo + n - length($0) - 1 }'
}
seg() {  # seg ID FILE INODE START END
  info=$(st "$2")
  if [ "${info% *}" != "$3" ]; then printf 'seg\t%s\tchanged\n' "$1"; return; fi
  stop=$(bound "$2" "$4" "$5")
  printf 'seg\t%s\tok\t%s\n' "$1" "$stop"
  [ "$stop" -gt "$4" ] || return 0
  # grep's exit status travels as a last line (no pipefail in POSIX sh): 2 = grep failed
  { dd bs=1 skip="$4" count=0 2>/dev/null; grep -a -b -E @GREP_ARGS@; echo "__rc=$?"; } < "$2" |
    awk -v id="$1" -v base="$4" -v stop="$stop" -v np="$NP" -v ms="$MS" -v sb="$SB" '
      @KEY_FUNCS@
      /^__rc=/ { rc = substr($0, 6) + 0; next }
      { i = index($0, ":"); off = base + substr($0, 1, i - 1); if (off >= stop) next
        line = substr($0, i + 1)
        for (k = 1; k <= np; k++) if (line ~ ENVIRON["HISOPS_P" k]) {
          c[k]++; s[k, c[k] % ms] = substr(line, 1, sb); @KEY_COUNT@ } }
      END { if (rc > 1) { printf "segerr\t%s\tgrep exit %d\n", id, rc; exit }
            for (k = 1; k <= np; k++) { printf "cnt\t%s\t%d\t%d\n", id, k, c[k]
              for (j = (c[k] > ms ? c[k] - ms + 1 : 1); j <= c[k]; j++)
                printf "smp\t%s\t%d\t%s\n", id, k, s[k, j % ms] }
            for (kk in kc) { split(kk, a, SUBSEP); gsub(/\t/, " ", a[2])
              printf "key\t%s\t%d\t%d\t%s\n", id, a[1], kc[kk], a[2] } }'
}
# rot ID FILE OLD_INODE OLD_OFFSET: the rest of the rotated-away file, found by its inode
# beside FILE
rot() {
  d=$(dirname -- "$2")
  name=$(ls -i -- "$d" 2>/dev/null |
    awk -v ino="$3" '$1 == ino { sub(/^ *[0-9]+ /, ""); print; exit }')
  info=$([ -n "$name" ] && st "$d/$name")
  if [ -z "$info" ] || [ "${info#* }" -lt "$4" ]; then printf 'seg\t%s\tgone\n' "$1"; return; fi
  seg "$1" "$d/$name" "$3" "$4" "${info#* }"
}
k=1
while [ "$k" -le "$NP" ]; do  # a pattern grep or awk rejects would silently count nothing
  eval "p=\$HISOPS_P$k"
  grep -E -e "$p" </dev/null >/dev/null 2>&1
  [ $? -eq 2 ] && printf 'perr\t%s\tgrep -E rejects it\n' "$k"
  echo | awk -v k="$k" '{ if ($0 ~ ENVIRON["HISOPS_P" k]) x = 1 }' >/dev/null 2>&1 ||
    printf 'perr\t%s\tawk rejects it\n' "$k"
  k=$((k + 1))
done
"""


def _key_code(keys: Mapping[int, str]) -> tuple[str, str]:
    """awk functions ``hk<k>(line)`` and the statement counting each matched line by its key."""
    for body in keys.values():
        if "'" in body:
            raise ValueError("a key extractor is awk code inside '...': no single quotes")
    funcs = " ".join(f"function hk{k + 1}(line, u, h, t) {{ {body} }}" for k, body in keys.items())
    count = " ".join(f"if (k == {k + 1}) kc[k, hk{k + 1}(line)]++;" for k in keys)
    return funcs, count


def scan_script(
    plans: list[ReadPlan], eres: list[str], keys: Mapping[int, str] | None = None
) -> str:
    """sh script scanning every planned segment; segment ids: 'f<i>' (file), 'r<i>' (rotated tail).

    ``keys``: pattern index (0-based) → body of an awk function of ``line`` (locals ``u h t``)
    returning a key (e.g. user@source); matched lines of that pattern are also counted per key
    (memory: one counter per distinct key)."""
    env = "".join(
        f"HISOPS_P{k}={shlex.quote(p)}; export HISOPS_P{k}\n" for k, p in enumerate(eres, 1)
    )
    head = f"{env}NP={len(eres)}; MS={MAX_SAMPLES}; SB={SAMPLE_BYTES}; BW={BOUNDARY_WINDOW}\n"
    grep_args = " ".join(f'-e "$HISOPS_P{k}"' for k in range(1, len(eres) + 1))
    funcs, count = _key_code(keys or {})
    sh = _SCAN_SH.replace("@GREP_ARGS@", grep_args)
    sh = sh.replace("@KEY_FUNCS@", funcs).replace("@KEY_COUNT@", count)
    body = ""
    for i, plan in enumerate(plans):
        q = shlex.quote(plan.path)
        if plan.rotated_from:
            body += f"rot r{i} {q} {plan.rotated_from[0]} {plan.rotated_from[1]}\n"
        body += f"seg f{i} {q} {plan.inode} {plan.start} {plan.end}\n"
    return "sh -c " + shlex.quote(head + sh + body)


@dataclass
class SegmentResult:
    status: str = "missing"  # ok | changed | gone | missing (no answer)
    stop: int | None = None
    counts: dict[int, int] = field(default_factory=dict)  # pattern index (0-based) → lines
    samples: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    error: str | None = None  # the host reported a failure (e.g. grep exit 2)
    keys: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))


def parse_scan(records: dict[str, list[list[str]]]) -> dict[str, SegmentResult]:
    out: dict[str, SegmentResult] = defaultdict(SegmentResult)
    for r in records.get("seg", []):
        seg = out[r[0]]
        seg.status = r[1]
        seg.stop = int(r[2]) if len(r) > 2 and r[2].isdigit() else None
    for r in records.get("segerr", []):
        out[r[0]].error = r[1] if len(r) > 1 else "scan failed"
    for r in records.get("cnt", []):
        out[r[0]].counts[int(r[1]) - 1] = int(r[2])
    for r in records.get("smp", []):
        out[r[0]].samples[int(r[1]) - 1].append("\t".join(r[2:]))
    for r in records.get("key", []):
        if len(r) >= 4:
            per = out[r[0]].keys[int(r[1]) - 1]
            per[r[3]] = per.get(r[3], 0) + int(r[2])
    return out


# --- from listing to findings ------------------------------------------------------------------

SCAN_TIMEOUT_S = 600


@dataclass
class PatternSet:
    """The union of every source's patterns, each translated once (scan order = ERE list order)."""

    eres: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)  # Python regex → position in eres
    errors: dict[str, str] = field(default_factory=dict)  # Python regex → why untranslatable

    def add(self, regex: str) -> None:
        if regex in self.index or regex in self.errors:
            return
        try:
            ere = to_ere(regex)
        except (Untranslatable, re.error) as exc:
            self.errors[regex] = str(exc)
            return
        self.index[regex] = len(self.eres)
        self.eres.append(ere)


@dataclass
class Scan:
    """One host's scan: plans by path, results by segment id, pattern
    problems reported by the host."""

    plans: list[ReadPlan]
    results: dict[str, SegmentResult]
    pattern_errors: dict[int, str]
    stderr: str = ""


def run_scan(
    runner: Any, plans: list[ReadPlan], patterns: PatternSet, keys: Mapping[str, str] | None = None
) -> Scan:
    """Run the scan script for all planned files in one command (raises TargetUnreachable).

    ``keys``: Python regex → awk key extractor (see :func:`scan_script`)."""
    from hisops.inspect.host_checks import parse_output

    if not plans or not patterns.eres:
        return Scan(plans, {}, {})
    by_index = {patterns.index[r]: body for r, body in (keys or {}).items() if r in patterns.index}
    res = runner.run(scan_script(plans, patterns.eres, by_index), timeout=SCAN_TIMEOUT_S)
    records = parse_output(res.stdout).records
    perr = {int(r[0]) - 1: r[1] for r in records.get("perr", []) if len(r) >= 2}
    stderr = res.stderr.strip()[-500:] if res.rc else ""
    return Scan(plans, parse_scan(records), perr, stderr)


class LogOffsets(dict):  # noqa: FURB189 - a dict with two facts about where it came from
    """path → (inode, offset) after a scan, plus who read (``reader``) and every path listed."""

    def __init__(
        self,
        offsets: Mapping[str, tuple[int | None, int]] | None = None,
        reader: str = "",
        listed: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(offsets or {})
        self.reader, self.listed = reader, listed


OffsetSource = Remembered | Callable[[str], Remembered] | None


def remembered_for(source: OffsetSource, reader: str) -> Remembered:
    """The remembered offsets: a mapping as given, or looked up for this reader (the catalog)."""
    if source is None:
        return {}
    return source(reader) if callable(source) else source


def inspect_logs(
    t: Target,
    sources: list[Any],
    globs: list[str],
    records: dict[str, list[list[str]]],
    runner: Any,
    offsets: OffsetSource,
) -> tuple[list[FindingRecord], LogOffsets]:
    """Log findings of one host and the new (inode, offset) per scanned path.

    ``offsets``: path → (inode, offset) remembered by the last inspection, or a function of the
    reader (the machine the host's script ran on) returning them.
    """
    files, empty = parse_listing(records)
    reader = reader_of(records)
    patterns = PatternSet()
    for source in sources:
        for regex in source.patterns.values():
            patterns.add(regex)
    readable = {f.path: f for f in files if f.error is None}
    plans = plan_reads(list(readable.values()), remembered_for(offsets, reader))
    scan = run_scan(runner, plans, patterns)
    findings: list[FindingRecord] = []
    for i, source in enumerate(sources):
        lt = t.child("log", f"{t.target_id}:{source.path}")
        mine = [f for f in files if f.glob_index == i]
        findings += source_findings(lt, source, globs[i], mine, i in empty, scan, patterns)
    return findings, LogOffsets(new_offsets(scan), reader, frozenset(f.path for f in files))


def new_offsets(scan: Scan) -> Offsets:
    """(inode, end of the last complete line read) per file scanned successfully."""
    out: Offsets = {}
    for i, plan in enumerate(scan.plans):
        seg = scan.results.get(f"f{i}")
        if seg and seg.status == "ok" and seg.stop is not None and not _failed(seg, plan, scan):
            out[plan.path] = (plan.inode, seg.stop)
    return out


def _failed(seg: SegmentResult, plan: ReadPlan, scan: Scan) -> bool:
    """The segment had bytes to read but no counts came back (grep or awk died on the host)."""
    return seg.stop is not None and seg.stop > plan.start and not seg.counts


def source_findings(
    lt: Target,
    source: Any,
    glob: str,
    files: list[Listed],
    empty: bool,
    scan: Scan,
    patterns: PatternSet,
) -> list[FindingRecord]:
    files_finding = _files_finding(lt, glob, files, empty, scan)
    if empty:
        return [files_finding]
    segments = _segments_of(files, scan)
    out = [files_finding]
    for name, regex in source.patterns.items():
        out.append(_pattern_finding(lt, name, regex, segments, scan, patterns))
    return out


def _segments_of(
    files: list[Listed], scan: Scan
) -> list[tuple[ReadPlan, str, SegmentResult | None]]:
    """(plan, segment id, result) for this source's files, rotated tails first (they are older)."""
    paths = {f.path for f in files if f.error is None}
    out: list[tuple[ReadPlan, str, SegmentResult | None]] = []
    for i, plan in enumerate(scan.plans):
        if plan.path in paths:
            if plan.rotated_from:
                out.append((plan, f"r{i}", scan.results.get(f"r{i}")))
            out.append((plan, f"f{i}", scan.results.get(f"f{i}")))
    return out


def _files_finding(
    lt: Target, glob: str, files: list[Listed], empty: bool, scan: Scan
) -> FindingRecord:
    if empty:
        return lt.make(
            "log.files",
            "warn",
            0,
            "no file = warn",
            value_text="no file",
            zh=f"没有匹配 {glob} 的日志文件",
            en=f"no log file matches {glob}",
            glob=glob,
        )
    unreadable = [f.path for f in files if f.error]
    if unreadable:
        return lt.error(
            "log.files",
            f"log files not readable by the inspection user: {', '.join(unreadable[:5])}",
        )
    plans = {p.path: p for p in scan.plans}
    read = [plans[f.path] for f in files if f.path in plans]
    scanned = sum(max(p.end - p.start, 0) for p in read)
    notes = sorted({p.reason for p in read} - {"continued"})
    return lt.make(
        "log.files",
        "ok",
        len(read),
        None,
        value_text=f"{plural(len(read), 'file')}, +{fmt_bytes(scanned)}",
        zh=f"{len(read)} 个日志文件，新增 {fmt_bytes(scanned)}"
        + (f"（{', '.join(notes)}）" if notes else ""),
        en=f"{plural(len(read), 'log file')}, {fmt_bytes(scanned)} new"
        + (f" ({', '.join(notes)})" if notes else ""),
        glob=glob,
        files=[
            {"path": p.path, "inode": p.inode, "from": p.start, "to": p.end, "reason": p.reason}
            for p in read[:50]
        ],
    )


def _pattern_finding(
    lt: Target,
    name: str,
    regex: str,
    segments: list[tuple[ReadPlan, str, SegmentResult | None]],
    scan: Scan,
    patterns: PatternSet,
) -> FindingRecord:
    check_id = f"log.{name}"
    if regex in patterns.errors:
        return lt.error(
            check_id, f"pattern {regex!r} cannot run on the host: {patterns.errors[regex]}"
        )
    k = patterns.index[regex]
    if k in scan.pattern_errors:
        return lt.error(check_id, f"pattern {regex!r}: {scan.pattern_errors[k]}")
    count, samples, problems = 0, [], []
    for plan, seg_id, seg in segments:
        if seg is None:
            problems.append(f"{plan.path}: no answer from the host {scan.stderr}".strip())
        elif (
            seg.status == "ok"
            and seg.stop is not None
            and seg.stop > _start(plan, seg_id)
            and k not in seg.counts
        ):
            problems.append(
                f"{plan.path}: scan failed ({seg.error or 'no counts'}) {scan.stderr}".strip()
            )
        else:
            count += seg.counts.get(k, 0)
            samples += seg.samples.get(k, [])
    if problems:
        return lt.error(check_id, "; ".join(problems[:3]))
    return _count_finding(lt, check_id, name, regex, count, samples[-MAX_SAMPLES:], segments)


def _start(plan: ReadPlan, seg_id: str) -> int:
    return plan.rotated_from[1] if seg_id.startswith("r") and plan.rotated_from else plan.start


def _count_finding(
    lt: Target,
    check_id: str,
    name: str,
    regex: str,
    count: int,
    samples: list[str],
    segments: list[tuple[ReadPlan, str, SegmentResult | None]],
) -> FindingRecord:
    severity = "ok" if count == 0 else ("critical" if name.lower() in CRITICAL_NAMES else "warn")
    rotated = [p.path for p, sid, s in segments if sid.startswith("r") and s and s.status == "ok"]
    first = [p.path for p, sid, _ in segments if sid.startswith("f") and p.reason == "new"]
    zh = f"新增日志中匹配 {name}（{regex}）的行：{count}"
    en = f"{plural(count, 'new log line')} match{'es' if count == 1 else ''} {name} ({regex})"
    return lt.make(
        check_id,
        severity,
        count,
        f"any {'= critical' if name.lower() in CRITICAL_NAMES else '= warn'}",
        value_text=plural(count, "line"),
        zh=zh,
        en=en,
        pattern=regex,
        samples=[mask_sensitive(s) for s in samples],
        rotated_tail_read=rotated,
        first_scan=first,
        metrics={f"log_lines:{name}": count},
    )
