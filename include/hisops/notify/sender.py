"""Deliver one message to a list of channels through apprise (第七条: report to the supervisor).

:func:`send` never raises because one channel failed: every channel gets an outcome
(sent / failed / skipped) with a reason that holds no secret, so the caller can record it
in the catalog and the report, and an incident can say who was (not) told.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hisops.notify.channels import SEVERITIES, Channel, redact, scrub, severity_rank

log = logging.getLogger(__name__)

Status = Literal["sent", "failed", "skipped"]


@dataclass(frozen=True)
class ChannelOutcome:
    """What happened on one channel; ``reason`` is secret-free (safe to store and show)."""

    channel: str
    kind: str
    status: Status
    reason: str = ""


@dataclass(frozen=True)
class SendResult:
    """Outcome of one :func:`send` call, per channel."""

    title: str
    severity: str
    outcomes: tuple[ChannelOutcome, ...] = ()
    missing_attachments: tuple[str, ...] = field(default=())

    @property
    def sent(self) -> list[str]:
        return [o.channel for o in self.outcomes if o.status == "sent"]

    @property
    def failed(self) -> dict[str, str]:
        return {o.channel: o.reason for o in self.outcomes if o.status == "failed"}

    @property
    def skipped(self) -> list[str]:
        return [o.channel for o in self.outcomes if o.status == "skipped"]

    @property
    def ok(self) -> bool:
        """No channel that should have received the message failed."""
        return not self.failed


@dataclass(frozen=True)
class _Message:
    title: str
    body: str
    html: str | None
    severity: str
    attachments: tuple[str, ...]


def send(
    channels: Sequence[Channel],
    title: str,
    body: str,
    *,
    severity: str = "warn",
    html: str | None = None,
    attachments: Iterable[Path] = (),
) -> SendResult:
    """Send ``title``/``body`` to every channel whose ``min_severity`` admits ``severity``.

    Channels that render HTML (e-mail) get ``html`` when given — apprise adds a text/plain
    alternative part — the others get the plain ``body``. Missing attachment files are left
    out (and listed in the result) rather than blocking the alert.
    """
    severity_rank(severity)
    files, missing = _split_attachments(attachments)
    msg = _Message(title, body, html, severity, files)
    outcomes = tuple(_outcome(ch, msg) for ch in channels)
    for o in outcomes:
        log.info("notify %r (%s): %s %s", o.channel, o.kind, o.status, o.reason)
    return SendResult(title, severity, outcomes, missing)


def _split_attachments(paths: Iterable[Path]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    present, missing = [], []
    for p in paths:
        (present if Path(p).is_file() else missing).append(str(p))
    for m in missing:
        log.warning("notify: attachment %s does not exist; sending without it", m)
    return tuple(present), tuple(missing)


def _outcome(channel: Channel, msg: _Message) -> ChannelOutcome:
    if not channel.accepts(msg.severity):
        reason = f"{msg.severity} < min_severity {channel.min_severity}"
        return ChannelOutcome(channel.name, channel.kind, "skipped", reason)
    try:
        ok, reason = _deliver(channel, msg)
    except Exception as exc:  # one broken channel must never stop the others
        ok, reason = False, f"{type(exc).__name__}: {exc}"
    status: Status = "sent" if ok else "failed"
    return ChannelOutcome(channel.name, channel.kind, status, scrub(reason, channel.apprise_url))


def _deliver(channel: Channel, msg: _Message) -> tuple[bool, str]:
    """(delivered?, reason) for one channel; the reason comes from apprise's own warnings."""
    import apprise

    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        plugin = apprise.Apprise.instantiate(channel.apprise_url, asset=_asset())
        if plugin is None:
            return (
                False,
                f"invalid apprise URL for kind {channel.kind} ({redact(channel.apprise_url)})",
            )
        text, body_format = _body_for(plugin, msg)
        ok = plugin.notify(
            body=text,
            title=msg.title,
            notify_type=apprise.NotifyType(_NOTIFY_TYPES[msg.severity]),
            body_format=body_format,
            attach=apprise.AppriseAttachment(list(msg.attachments)) if msg.attachments else None,
        )
    warnings = " | ".join(line for line in captured.getvalue().splitlines() if line.strip())
    return bool(ok), "" if ok else (warnings or "delivery failed")


def _body_for(plugin: Any, msg: _Message) -> tuple[str, str]:
    """HTML channels (e-mail) always get HTML: ours, or the plain body with its line breaks as
    ``<br/>`` — handing them plain text made apprise treat it as HTML, so the text part came out
    joined with spaces and the HTML part showed the raw line breaks."""
    from apprise import NotifyFormat

    if plugin.notify_format == NotifyFormat.HTML:
        return msg.html or text_as_html(msg.body), NotifyFormat.HTML
    return msg.body, NotifyFormat.TEXT


def text_as_html(text: str) -> str:
    """Plain text → HTML that keeps every line (escaped; runs of spaces kept)."""
    import html

    lines = text.replace("\r\n", "\n").split("\n")
    return "<br/>".join(html.escape(line).replace("  ", "&nbsp; ") for line in lines)


def _asset() -> Any:
    from apprise import AppriseAsset, PersistentStoreMode

    return AppriseAsset(
        app_id="hisops",
        app_desc="hisops 医院信息系统运维 (hospital IT operations)",
        storage_mode=PersistentStoreMode.MEMORY,  # nothing written under ~/.local
        interpret_emojis=False,
    )


_NOTIFY_TYPES = dict(zip(SEVERITIES, ("success", "warning", "failure"), strict=True))
