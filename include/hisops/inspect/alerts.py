"""Who is told what after an inspection: alert text, alert severity, report channels, delivery.

Rules only (no sending, no Airflow): :mod:`hisops.inspect.service` applies them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from hisops import severity

if TYPE_CHECKING:
    from hisops.inventory.models import Notification
    from hisops.notify import Channel, SendResult

log = logging.getLogger(__name__)

EMAIL = "email"
ALERT_LINES = 30  # chat robots cap message size (WeCom: 4096 bytes)
CLOSES_ITSELF = (
    "处理后下一次巡检将自动关闭事件。"
    "The incident closes itself at the next inspection after the fix."
)


def alert_severity(severities: Sequence[str]) -> str:
    """The severity a message is sent with: the worst one, where a check that could not run
    (``check_error``) pages like a warning."""
    worst = severity.worst(severities)
    return "warn" if worst == "check_error" else worst


def incident_message(changes: Sequence[Mapping[str, object]], hospital: str) -> tuple[str, str]:
    """(title, body) of the new/escalated-incident alert, Chinese first; at most ALERT_LINES
    incidents listed."""
    new = sum(1 for c in changes if c["action"] == "opened")
    up = len(changes) - new
    title = f"巡检告警 Inspection alert · {hospital} · 新发 new {new} / 升级 escalated {up}"
    lines = [alert_line(c) for c in changes[:ALERT_LINES]]
    more = len(changes) - ALERT_LINES
    if more > 0:
        lines.append(f"… 另有 {more} 项，见巡检报告 ({more} more in the report)")
    lines.append(CLOSES_ITSELF)
    return title, "\n".join(lines)


def alert_line(c: Mapping[str, object]) -> str:
    """One incident change as one line of the alert."""
    verb = (
        "新发 NEW"
        if c["action"] == "opened"
        else f"升级 ESCALATED (from {c.get('previous_severity')})"
    )
    return (
        f"[{verb}] #{c['incident_id']} {c['severity']} {c['target_id']} {c['check_id']}: "
        f"{c['title_zh']} ({c['title_en']})"
    )


def report_channels(channels: Sequence[Channel], worst: str) -> list[Channel]:
    """E-mail always gets the daily report (it is the record for the supervisor); chat channels
    (WeCom, DingTalk, webhooks) only when something is at least their ``min_severity``."""
    out = []
    for ch in channels:
        if ch.kind == EMAIL:
            out.append(dataclasses.replace(ch, min_severity="ok"))
        elif worst != "ok" and severity.at_least(worst, ch.min_severity):
            out.append(ch)
    return out


def require_channels(configured: Sequence[Notification], channels: Sequence[Channel]) -> None:
    """A channel whose connection is unusable is skipped (with a warning, by the caller), but when
    channels are configured and none is usable, nobody could be told: that fails."""
    if configured and not channels:
        raise RuntimeError(
            "no notification channel is usable 通知渠道均不可用 — check the connections named in "
            f"`notifications:` ({', '.join(n.conn_id for n in configured)})"
        )


def require_delivery(result: SendResult, what: str) -> None:
    """Fail (→ retry, red in the UI) when every channel that should have got the message failed."""
    if result.failed and not result.sent:
        raise RuntimeError(f"{what} reached no supervisor channel 未能通知主管: {result.failed}")
    if result.failed:
        log.warning("%s: some channels failed: %s", what, result.failed)
