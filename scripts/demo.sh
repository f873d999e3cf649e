#!/usr/bin/env bash
# Set up (the first run takes a minute or two, with progress shown) and run the offline demo.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "llm-pool demo: setting up first (virtualenv, PostgreSQL, Redis), then the demo itself"
bash scripts/setup.sh
exec .venv/bin/pool demo "$@"
