"""Notifications (第七条: report anomalies to the supervisor) — channels and delivery via apprise.

Pure domain: no Airflow here. The Airflow glue (connections → channels) is
``hisops.airflow.notify_glue``.
"""

from hisops.notify.channels import (
    KINDS,
    SEVERITIES,
    Channel,
    ChannelConfigError,
    bilingual,
    build_apprise_url,
    redact,
    scrub,
    severity_rank,
)
from hisops.notify.sender import ChannelOutcome, SendResult, send

__all__ = [
    "KINDS",
    "SEVERITIES",
    "Channel",
    "ChannelConfigError",
    "ChannelOutcome",
    "SendResult",
    "bilingual",
    "build_apprise_url",
    "redact",
    "scrub",
    "send",
    "severity_rank",
]
