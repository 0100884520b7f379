#!/usr/bin/env bash
# hisops test suite: ./test.sh [pytest args]
# Starts what the tests need by itself: a private PostgreSQL cluster and an sshd on loopback.
set -euo pipefail
cd "$(dirname "$0")"
HISOPS_NEED_SSHD=1 HISOPS_NEED_BROWSER=1 scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
