"""The POSIX shell the host runs for file cleanup, and parsers for what it prints.

Everything the host prints is NUL-separated tokens, so any file name (spaces, quotes,
newlines) arrives intact. Needs GNU findutils (``find -printf``) and coreutils, as on every
RHEL/Kylin/UOS/Debian host; BusyBox ``find`` lacks ``-printf`` and the rule then fails with
that reason.

Open-for-writing detection (a file being written is never touched):
1. ``/proc/<pid>/fdinfo`` (Linux): the descriptors whose ``/proc/<pid>/fd/<n>`` link points
   under the rule's root (``find -lname``), then their ``flags:``; access mode O_WRONLY/O_RDWR
   marks the file as being written. A few processes per snapshot, not one per file; taken
   before listing a root and again before every batch.
2. else ``lsof -F an`` when installed (access mode ``w``/``u``).
3. else: nothing is known about writers, so the rule deletes nothing (every candidate is
   skipped with that reason). Without root the host only shows the runner user's own
   processes: run the cleanup as root (or the owner of the files) for the check to be complete.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

NUL = b"\0"
PROC, LSOF, NONE = "proc", "lsof", "none"

PRELUDE = r"""
printf 'N\0%s\0' "$(date +%s)"
for p in {protected}; do printf 'P\0%s\0%s\0' "$p" "$(readlink -f -- "$p" 2>/dev/null)"; done
"""

WRITERS = r"""
if [ -d /proc/self/fdinfo ]; then
  printf 'M\0proc\0G\0'
  find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 \( {match} \) -printf '%p\n' 2>/dev/null \
    | sed 's,/fd/,/fdinfo/,' | xargs -r grep -s -H '^flags:'
  printf '\0L\0'
  find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 \( {match} \) -printf '%p\0%l\0' 2>/dev/null
  printf 'E\0'
elif command -v lsof >/dev/null 2>&1; then
  printf 'M\0lsof\0G\0'
  lsof -w -n -P -F an 2>/dev/null
  printf '\0E\0'
else
  printf 'M\0none\0E\0'
fi
"""

LISTING = r"""
root={root}
real=$(readlink -f -- "$root" 2>/dev/null)
printf 'R\0%s\0' "$real"
[ -n "$real" ] && [ -d "$real" ] || exit 0
find -P "$root" -xdev -mindepth 1 {depth} -type f -name {name} {filters} \
  -printf 'F\0%T@\0%s\0%n\0%p\0'
"""

IN_DIR = r"""hisops_in() { cd -P -- "$1" 2>/dev/null && [ "$(pwd -P)" = "$1" ]; }
"""

DELETE_DIR = r"""
if hisops_in {dir}; then
  printf 'C\0%s\0' {dir}
  {{ err=$(find -P {names} -maxdepth 0 -type f {filters} -printf 'T\0%s\0%p\0' -delete \
    2>&1 1>&3 3>&-); }} 3>&1
  printf 'E\0%s\0' "$err"
  for n in {bare}; do if [ -e "./$n" ] || [ -L "./$n" ]; then printf 'X\0%s\0' "$n"; fi; done
else
  printf 'Q\0%s\0' {dir}
fi
"""

COMPRESS_DIR = r"""
if hisops_in {dir}; then
  printf 'C\0%s\0' {dir}
  {{ err=$(find -P {names} -maxdepth 0 -type f {filters} -printf 'T\0%s\0%p\0' \
    -exec gzip -- {{}} + 2>&1 1>&3 3>&-); }} 3>&1
  printf 'E\0%s\0' "$err"
  for n in {bare}; do if [ -e "./$n" ] || [ -L "./$n" ]; then printf 'X\0%s\0' "$n"; fi; done
  find -P {gz} -maxdepth 0 -type f -printf 'Z\0%s\0%p\0' 2>/dev/null
else
  printf 'Q\0%s\0' {dir}
fi
"""


def q(text: str) -> str:
    return shlex.quote(text)


# --- glob → find + exact matcher ---------------------------------------------------------------


def _component_regex(component: str) -> str:
    out, i = "", 0
    while i < len(component):
        ch = component[i]
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[" and "]" in component[i + 1 :]:
            end = (
                component.index("]", i + 2)
                if component[i + 1 : i + 2] == "]"
                else component.index("]", i + 1)
            )
            body = component[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out += "[" + body.replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(ch)
        i += 1
    return out


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Exact glob semantics: '*' stays inside one component, '**' spans zero or more directories."""
    parts = PurePosixPath(pattern).parts
    rx = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "/":
            rx += "/"
        elif part == "**":
            rx += "(?:[^/]+/)*"
        else:
            rx += _component_regex(part) + ("" if last else "/")
    return re.compile(rx + r"\Z", re.DOTALL)


def _depth(pattern: str, root: str) -> str:
    rest = PurePosixPath(pattern).relative_to(root).parts
    if "**" in rest:
        return ""
    return f"-maxdepth {len(rest)}" + (f" -mindepth {len(rest)}" if len(rest) > 1 else "")


def listing_command(
    pattern: str, root: str, *, min_age_minutes: int | None, larger_than: int | None
) -> str:
    """find over one glob's root: regular files matching the last component (+ age/size filters)."""
    filters = []
    if min_age_minutes is not None:
        filters.append(f"-mmin +{min_age_minutes}")
    if larger_than is not None:
        filters.append(f"-size +{larger_than}c")
    return LISTING.format(
        root=q(root),
        depth=_depth(pattern, root),
        name=q(PurePosixPath(pattern).name),
        filters=" ".join(filters),
    )


def prelude_command(protected: Iterable[str]) -> str:
    items = " ".join(q(p) for p in protected) or "''"
    return PRELUDE.format(protected=items)


def _fnmatch_escape(text: str) -> str:
    return re.sub(r"([\\*?\[])", r"\\\1", text)


def writers_command(roots: Iterable[str]) -> str:
    """Open-for-writing snapshot, limited to descriptors pointing under
    ``roots`` (cheap on busy hosts)."""
    match = " -o ".join(f"-lname {q(_fnmatch_escape(r.rstrip('/')) + '/*')}" for r in roots)
    return WRITERS.format(match=match or "-false")


def action_command(
    groups: dict[str, list[str]], action: str, *, min_age_minutes: int, larger_than: int | None
) -> str:
    """One script for a batch: per directory, cd without symlinks, re-check and act on the names."""
    filters = f"-mmin +{min_age_minutes}" + (
        f" -size +{larger_than}c" if larger_than is not None else ""
    )
    template = COMPRESS_DIR if action == "compress" else DELETE_DIR
    body = [IN_DIR]
    for directory, names in groups.items():
        body.append(
            template.format(
                dir=q(directory),
                names=" ".join("./" + q(n) for n in names),
                filters=filters,
                bare=" ".join(q(n) for n in names),
                gz=" ".join("./" + q(n + ".gz") for n in names),
            )
        )
    return "".join(body)


# --- parsing -------------------------------------------------------------------------------------


def tokens(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """NUL-separated tokens from a stream of chunks; only the unfinished token is buffered."""
    pending = b""
    for chunk in chunks:
        parts = (pending + chunk).split(NUL)
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending


def text(token: bytes) -> str:
    return token.decode("utf-8", "surrogateescape")


def is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Prelude:
    now: float
    real_protected: dict[str, str]  # configured → real path ('' when it does not exist)
    method: str  # proc | lsof | none
    writers: frozenset[str]


def parse_prelude(stream: Iterator[bytes]) -> Prelude:
    now, real, method, writers = 0.0, {}, NONE, frozenset()
    for tag in stream:
        if tag == b"N":
            now = float(text(next(stream)))
        elif tag == b"P":
            configured = text(next(stream))
            real[configured] = text(next(stream))
        elif tag == b"M":
            method = text(next(stream))
            writers = _parse_writers(method, stream)
    return Prelude(now, real, method, writers)


def _parse_writers(method: str, stream: Iterator[bytes]) -> frozenset[str]:
    if method == NONE:
        next(stream, None)  # E
        return frozenset()
    assert next(stream) == b"G"
    block = text(next(stream))
    if method == LSOF:
        next(stream, None)
        return frozenset(_lsof_writers(block))
    writable = set()
    for line in block.splitlines():  # /proc/12/fdinfo/3:flags:\t0100001
        path, _, flags = line.partition(":flags:")
        mode = int(flags.strip() or "0", 8) & 0o3
        if mode in (1, 2, 3):
            writable.add(path.replace("/fdinfo/", "/fd/"))
    assert next(stream) == b"L"
    out = set()
    for token in stream:
        if token == b"E":
            break
        target = text(next(stream))
        if text(token) in writable:
            out.add(target)
    return frozenset(out)


def _lsof_writers(block: str) -> Iterator[str]:
    access = ""
    for line in block.splitlines():
        if line.startswith("a"):
            access = line[1:]
        elif line.startswith("n") and access in ("w", "u"):
            yield line[1:]
        elif line.startswith("f"):
            access = ""
