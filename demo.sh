#!/usr/bin/env bash
# hisops demo: ./demo.sh [up|down|status|clean]   (default: up)
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/hisops demo "${1:-up}"
