#!/usr/bin/env bash
# Set up (first run only takes a minute or two) and run the offline demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
exec .venv/bin/pool demo "$@"
