#!/usr/bin/env bash
# Create .venv and install exactly the locked versions (re-runs only when the lock changes).
# Also installs the OS packages the project needs (PostgreSQL server binaries, OpenSSH) when
# they are missing and we are root (Debian/Ubuntu).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

need_apt=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v pg_dump >/dev/null 2>&1 || need_apt+=(postgresql-client)
[ "${HISOPS_NEED_SSHD:-0}" = 1 ] && { [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server); }
# Redis: the Celery broker of the long CeleryExecutor scenario (tests/celery, loopback only)
[ "${HISOPS_NEED_SSHD:-0}" = 1 ] && { command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server); }
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
# PostgreSQL tools hisops drives (pgBackRest: physical backups and PITR; hypopg: index advice;
# pgaudit: statement audit; pg_repack: online bloat removal) and headless Chromium for page tests.
pg_major="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)"; pg_major="${pg_major:-15}"
command -v pgbackrest >/dev/null 2>&1 || need_apt+=(pgbackrest)
for ext in hypopg pgaudit repack; do
  dpkg -s "postgresql-$pg_major-$ext" >/dev/null 2>&1 || need_apt+=("postgresql-$pg_major-$ext")
done
if [ "${HISOPS_NEED_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need_apt+=(fonts-noto-cjk)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[bootstrap] apt-get install ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "[bootstrap] missing OS packages: ${need_apt[*]} — install them (e.g. apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

PY="${HISOPS_PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "[bootstrap] Python 3.11 is required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.hisops-lock.sha256
want="$(cat requirements-lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing locked requirements into .venv (first time: a few minutes) …"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-lock.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
