#!/usr/bin/env bash
# Set up a working checkout: a virtualenv with the project and every extra (`.[dev]`: proxy,
# worker, dashboard/demo and the test tools), and
# PostgreSQL + Redis answering on 127.0.0.1 (installed and started if absent).
# Says what it does; idempotent; used by `scripts/demo.sh` and `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."

export LITELLM_LOCAL_MODEL_COST_MAP=True
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

step() { printf '\n=== %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
die() { printf '\nsetup: %s\n' "$*" >&2; exit 1; }

apt_install() {
  say "installing with apt-get: $* (this may take a minute)"
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" \
    >/dev/null
}

# pip's own output (progress, errors), without the noise of what is already there
pip_install() {
  .venv/bin/python -m pip install --progress-bar off "$@" 2>&1 \
    | { grep -v -e '^WARNING: Location' -e '^Requirement already satisfied' || true; }
}

step "Python"
command -v "$PY" >/dev/null || die "$PY not found: install Python 3.11 or newer (or set PYTHON=...)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$("$PY" -V 2>&1) is too old: llm-pool needs Python >= 3.11 (set PYTHON=python3.11 ...)"
say "$("$PY" -V 2>&1) at $(command -v "$PY")"

step "virtualenv .venv + the project with every extra, .[dev] (first run: a minute or two)"
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
    ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    say "$PY cannot create virtualenvs (Debian/Ubuntu ship venv separately)"
    command -v apt-get >/dev/null || die "install the venv module for $PY, then re-run"
    apt_install "python$ver-venv" || apt_install python3-venv || die "could not install python3-venv"
  fi
  rm -rf .venv
  "$PY" -m venv .venv || die "$PY -m venv .venv failed (see above)"
  say "created .venv"
fi
pip_install -q --upgrade pip || die "upgrading pip failed (see above)"
pip_install -e '.[dev]' || die "pip install -e '.[dev]' failed: see pip's errors above"
.venv/bin/python -c "import litellm, openai, dramatiq, psycopg, redis, sdk, proxy, worker, llm_pool" \
  || die "the project's packages do not import (see above)"
say "installed: $(.venv/bin/python -m pip show litellm 2>/dev/null | sed -n 's/^Version: /litellm /p')"

step "PostgreSQL on 127.0.0.1:5432"
pg_trusts() {  # can we connect as postgres over TCP without a password?
  .venv/bin/python -c "import psycopg; psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres', connect_timeout=3).close()" 2>/dev/null
}
if pg_trusts; then
  say "answering"
else
  command -v pg_ctlcluster >/dev/null || apt_install postgresql || die "could not install postgresql"
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  say "starting the local cluster $ver/main"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not start (see its log in /var/log/postgresql)"
  if ! pg_trusts; then
    hba=/etc/postgresql/$ver/main/pg_hba.conf
    say "PostgreSQL asks for a password over TCP; the tests and the demo connect as"
    say "postgres without one, so adding 'host all all 127.0.0.1/32 trust' at the top of"
    say "$hba (a copy is kept as $hba.llm-pool.bak) and reloading"
    $SUDO cp "$hba" "$hba.llm-pool.bak"
    $SUDO sh -c "{ echo 'host all all 127.0.0.1/32 trust'; cat '$hba.llm-pool.bak'; } > '$hba'"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
    sleep 1
    pg_trusts || die "still cannot connect as postgres@127.0.0.1 (set POOL_DATABASE_URL to a server you can use)"
  fi
  say "answering"
fi

step "Redis on 127.0.0.1:6379"
redis_up() { .venv/bin/python -c "import redis; redis.Redis(socket_connect_timeout=2).ping()" 2>/dev/null; }
if redis_up; then
  say "answering"
else
  command -v redis-server >/dev/null || apt_install redis-server || die "could not install redis-server"
  say "starting redis-server (no persistence; log in /var/log/redis/ci.log)"
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  redis_up || die "Redis did not start (see /var/log/redis/ci.log)"
  say "answering"
fi
step "setup done"
