"""`[core] hostname_callable` for the scenario's workers: both run on this one machine, so the
TI's `hostname` would be the same for both; each worker's env names its Celery node instead."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("HISOPS_TEST_NODE") or socket.getfqdn()
