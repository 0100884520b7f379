"""The audit trail's hash chain — the ONE place that says how an audit event is hashed.

Each event's ``hash`` = SHA-256 over ``prev_hash`` and a canonical JSON of the event's
content (sequence number, time, actor, source, action, target, result, reason, details, DAG
and run). ``seq`` counts 1, 2, 3 … without gaps, so a deleted row shows as a gap or a broken
link; an edited row no longer matches its hash. The repository appends under a PostgreSQL
advisory lock so concurrent writers never fork the chain. Pure Python, no database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

#: the ``prev_hash`` of the first event (seq 1)
GENESIS = "0" * 64
#: key of the transaction-scoped advisory lock that serialises appends to the chain
CHAIN_LOCK_KEY = 7_300_100_100

HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "source",
    "action",
    "target",
    "result",
    "reason",
    "details",
    "dag_id",
    "run_id",
)


def normalise_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Details as they come back from JSONB (dates, paths, tuples → JSON types)."""
    return json.loads(json.dumps(dict(details or {}), ensure_ascii=False, default=str))


def _at_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(event: Mapping[str, Any]) -> str:
    """The exact text that is hashed for one event (keys sorted, UTC time, no whitespace)."""
    body = {k: event.get(k) for k in HASHED_FIELDS}
    body["at"] = _at_text(body["at"])
    body["details"] = normalise_details(body["details"])
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(event)}".encode()).hexdigest()
