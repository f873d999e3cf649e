#!/usr/bin/env bash
# Set up a working checkout: a virtualenv with the project (dev extras), and
# PostgreSQL + Redis answering on 127.0.0.1 (installed and started if absent).
# Idempotent; used by `scripts/demo.sh` and `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."

export LITELLM_LOCAL_MODEL_COST_MAP=True
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

step() { printf '\n=== %s\n' "$*"; }

apt_install() {
  step "apt-get install $*"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

step "virtualenv + project (with dev extras)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import litellm, openai, dramatiq, psycopg, redis, sdk, proxy, worker, llm_pool"

step "PostgreSQL on 127.0.0.1:5432"
if ! (command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432); then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  # tests connect as postgres over TCP without a password (as on these machines)
  if ! $SUDO grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    echo "host all all 127.0.0.1/32 trust" | $SUDO tee /tmp/pg_hba.head >/dev/null
    $SUDO sh -c "cat /tmp/pg_hba.head '$hba' > '$hba.new' && mv '$hba.new' '$hba'"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432
fi

step "Redis on 127.0.0.1:6379"
redis_up() { .venv/bin/python -c "import redis; redis.Redis(socket_connect_timeout=2).ping()" 2>/dev/null; }
if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  redis_up
fi

