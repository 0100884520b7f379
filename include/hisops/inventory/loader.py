"""Load and validate the inventory YAML; every problem becomes one line
`<file>: <field path>: <problem>`."""

from __future__ import annotations

import difflib
import math
import os
import re
import types
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hisops.inventory.bounds import MAX_FILE_BYTES, BoundsExceeded, check_events
from hisops.inventory.models import REPO_ROOT, FieldProblems, Inventory, Loc, format_loc
from hisops.inventory.thresholds import fmt_number

SECRET_KEY_RE = re.compile(r"passw(or)?d|secret|token|private[_-]?key|api[_-]?key", re.IGNORECASE)
URL_CREDENTIALS_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@:]*:[^/\s@]*@")
NAME_KEYED = {"critical_columns", "expectations", "patterns"}  # keys there are table/pattern names
SECRETS = "secrets are not allowed in the inventory"
MAPPING = "must be a mapping (key: value)"

PHRASES = {
    "missing": "required",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": MAPPING,
    "model_type": MAPPING,
    "model_attributes_type": MAPPING,
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_too_short": "must not be empty",
    "finite_number": "must be a finite number (not .nan / .inf)",
}
BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


class InventoryError(Exception):
    """The inventory is unusable; `.problems` holds one `<file>: <field
    path>: <problem>` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


def default_inventory_path() -> Path:
    """$HISOPS_INVENTORY, else $AIRFLOW_VAR_HISOPS_INVENTORY, else the repository's example."""
    for var in ("HISOPS_INVENTORY", "AIRFLOW_VAR_HISOPS_INVENTORY"):
        value = os.environ.get(var, "").strip()
        if value:
            return Path(value).expanduser()
    return REPO_ROOT / "inventory" / "hospital.example.yaml"


def load_inventory(path: str | Path, *, base_dir: str | Path | None = None) -> Inventory:
    """Parse and validate; raise InventoryError listing every problem found."""
    label = str(path)
    data = _read_mapping(Path(path), label)
    secrets = find_secrets(data) + find_unsafe_values(data)
    inventory, problems = _validate(data, base_dir or REPO_ROOT)
    problems = secrets + [p for p in problems if not any(_under(p[0], s[0]) for s in secrets)]
    if problems or inventory is None:
        raise InventoryError([f"{label}: {format_loc(loc)}: {msg}" for loc, msg in problems])
    return inventory


# --- reading -----------------------------------------------------------------------------


def _fail(label: str, where: str, problem: str) -> InventoryError:
    return InventoryError([f"{label}: {where}: {problem}"])


def _read_text(path: Path, label: str) -> str:
    try:
        with path.open("rb") as fh:  # never read more than the limit (a named pipe, /dev/zero …)
            raw = fh.read(MAX_FILE_BYTES + 1)
            size = max(len(raw), _size_of(path)) if len(raw) > MAX_FILE_BYTES else len(raw)
        if size > MAX_FILE_BYTES:
            mib = MAX_FILE_BYTES // (1024 * 1024)
            raise _fail(
                label,
                "(file)",
                f"larger than {mib} MiB ({size / 1024 / 1024:.1f} MiB): is this the inventory?",
            )
        return raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise _fail(label, "(file)", "file not found") from None
    except IsADirectoryError:
        raise _fail(label, "(file)", "is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise _fail(
            label, "(file)", f"not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        raise _fail(label, "(file)", f"cannot read: {exc.strerror or exc}") from None


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_mapping(path: Path, label: str) -> dict[str, Any]:
    text = _read_text(path, label)
    try:
        check_events(text, _StrictLoader)  # limits first: nothing is built from a hostile file
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except BoundsExceeded as exc:
        raise _fail(label, exc.where, exc.problem) from None
    except (
        RecursionError,
        MemoryError,
    ) as exc:  # should not happen within the bounds; never a traceback
        raise _fail(label, "(file)", f"YAML too complex to load ({type(exc).__name__})") from None
    except yaml.MarkedYAMLError as exc:
        raise _fail(label, *_yaml_position(exc)) from None
    except yaml.YAMLError as exc:
        raise _fail(label, "(file)", f"invalid YAML: {exc}") from None
    if data is None:
        raise _fail(
            label, "(file)", "empty file: expected a mapping (version, hospital, systems, ...)"
        )
    if not isinstance(data, dict):
        raise _fail(label, "(file)", f"top level must be a mapping (key: value), got {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string"}.get(type(value), f"a {type(value).__name__}")


def _yaml_position(exc: yaml.MarkedYAMLError) -> tuple[str, str]:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
    problem = exc.problem or exc.context or "syntax error"
    if exc.context and exc.problem and exc.context_mark and exc.context_mark is not mark:
        problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return where, f"invalid YAML: {problem}"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys in a mapping (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        line = seen.setdefault((key_node.tag, key_node.value), key_node.start_mark.line + 1)
        if line != key_node.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key_node.value!r} (first at line {line})",
                key_node.start_mark,
            )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --- secrets -----------------------------------------------------------------------------


def find_secrets(data: Any, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """Secret-looking keys and URLs with user:password@ anywhere in the raw YAML data."""
    if isinstance(data, dict):
        return _secrets_in_mapping(data, loc)
    if isinstance(data, list):
        return [p for i, item in enumerate(data) for p in find_secrets(item, (*loc, i))]
    if isinstance(data, str) and URL_CREDENTIALS_RE.search(data):
        return [
            (
                loc,
                f"{SECRETS}: remove user:password@ from the URL and put it in an Airflow "
                "connection",
            )
        ]
    return []


def _secrets_in_mapping(data: dict[Any, Any], loc: Loc) -> list[tuple[Loc, str]]:
    names_only = bool(loc) and loc[-1] in NAME_KEYED
    out: list[tuple[Loc, str]] = []
    for key, value in data.items():
        sub = (*loc, key if isinstance(key, str | int) and not isinstance(key, bool) else str(key))
        if not names_only and SECRET_KEY_RE.search(str(key)):
            out.append((sub, f"{SECRETS}: put it in the Airflow connection {_connection_of(data)}"))
        else:
            out += find_secrets(value, sub)
    return out


def _connection_of(mapping: dict[Any, Any]) -> str:
    for key in ("conn_id", "ssh_conn_id", "encryption_conn_id"):
        if isinstance(mapping.get(key), str):
            return repr(mapping[key])
    return "this entry names (conn_id)"


def _under(loc: Loc, prefix: Loc) -> bool:
    return loc[: len(prefix)] == prefix


# --- numbers and invisible characters ------------------------------------------------------

INVISIBLE_CATEGORIES = {
    "Cf",
    "Cc",
    "Co",
    "Cs",
}  # format (zero-width, bidi), control, private, surrogate
ALLOWED_CONTROLS = {"\t", "\n", "\r"}
NOT_FINITE = "must be a finite number (not .nan / .inf)"


def find_unsafe_values(data: Any, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """Non-finite numbers, and invisible characters (zero-width, bidi overrides) in keys or text.

    A ``.nan`` threshold compares false with everything and silently disables a check; a
    right-to-left override makes a name read differently from what it is.
    """
    if isinstance(data, dict):
        out: list[tuple[Loc, str]] = []
        for key, value in data.items():
            sub = (
                *loc,
                key if isinstance(key, str | int) and not isinstance(key, bool) else str(key),
            )
            problem = _invisible(key) if isinstance(key, str) else None
            out += [(sub, problem)] if problem else find_unsafe_values(value, sub)
        return out
    if isinstance(data, list):
        return [p for i, item in enumerate(data) for p in find_unsafe_values(item, (*loc, i))]
    if isinstance(data, float) and not math.isfinite(data):
        return [(loc, NOT_FINITE)]
    if isinstance(data, str):
        problem = _invisible(data)
        return [(loc, problem)] if problem else []
    return []


def _invisible(text: str) -> str | None:
    for ch in text:
        if unicodedata.category(ch) in INVISIBLE_CATEGORIES and ch not in ALLOWED_CONTROLS:
            name = unicodedata.name(ch, "control character")
            return f"contains the invisible character U+{ord(ch):04X} ({name}); remove it"
    return None


# --- validation --------------------------------------------------------------------------


def _validate(
    data: dict[str, Any], base_dir: str | Path
) -> tuple[Inventory | None, list[tuple[Loc, str]]]:
    try:
        return Inventory.model_validate(data, context={"base_dir": base_dir}), []
    except ValidationError as exc:
        return None, [p for err in exc.errors() for p in _problems(err)]
    except Exception as exc:  # noqa: BLE001 - never a stack trace for ops staff
        return None, [
            ((), f"internal error while validating ({type(exc).__name__}: {exc}); please report it")
        ]


def _problems(err: ErrorDetails) -> list[tuple[Loc, str]]:
    loc = tuple(err["loc"])
    error = (err.get("ctx") or {}).get("error")
    if err["type"] == "value_error" and isinstance(error, FieldProblems):
        return [((*loc, *sub), msg) for sub, msg in error.problems]
    return [(loc, _phrase(err, loc))]


def _phrase(err: ErrorDetails, loc: Loc) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind in BOUNDS:
        bound = next(v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt"))
        return f"must be {BOUNDS[kind]} {fmt_number(bound)}"
    if kind == "int_parsing_size":  # 1.0e+32 where an integer is expected: say the field's maximum
        limit = _field_max(loc)
        return f"must be <= {fmt_number(limit)}" if limit is not None else "number too large"
    if kind == "literal_error":
        choices = [c.strip("'") for c in re.split(r", | or ", str(ctx.get("expected", "")))]
        return "must be one of: " + ", ".join(choices)
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'' if n == 1 else 's'}"
    if kind in PHRASES:
        return PHRASES[kind]
    return err["msg"][:1].lower() + err["msg"][1:]


def _field_max(loc: Loc) -> float | None:
    model = model_at(Inventory, loc[:-1])
    field = model.model_fields.get(loc[-1]) if model and isinstance(loc[-1], str) else None
    for meta in field.metadata if field else []:
        if getattr(meta, "le", None) is not None:
            return meta.le
    return None


def _unknown_key(loc: Loc) -> str:
    model = model_at(Inventory, loc[:-1])
    allowed = list(model.model_fields) if model else []
    text = f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    return f"{text}; did you mean {close[0]}?" if close else text


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class found at `loc` inside `root` (following lists and dicts), or None."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is list and isinstance(part, int):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
