#!/usr/bin/env bash
# The demo: embedded defaults (SQLite, filesystem broker, console email, the Meta
# simulator), idempotent demo data, then the portal with a Celery worker and beat.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8000}"
export PORTAL_BASE_URL="${PORTAL_BASE_URL:-http://127.0.0.1:${PORT}}"
export META_SIMULATOR="${META_SIMULATOR:-true}"
# The demo signs staff in with a password only; production always asks for a TOTP code too (D80).
export STAFF_TWO_FACTOR_REQUIRED="${STAFF_TWO_FACTOR_REQUIRED:-false}"
PY=.venv/bin/python
LOG_DIR="${PORTAL_VAR_DIR:-var}/log"
mkdir -p "$LOG_DIR" "${PORTAL_VAR_DIR:-var}/static"  # whitenoise warns when STATIC_ROOT is missing

$PY manage.py migrate --no-input -v0
$PY manage.py seed_demo

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

.venv/bin/celery -A config worker --loglevel=INFO --concurrency=2 >"$LOG_DIR/worker.log" 2>&1 &
pids+=($!)
.venv/bin/celery -A config beat --loglevel=INFO >"$LOG_DIR/beat.log" 2>&1 &
pids+=($!)
echo "Celery worker and beat started (logs in $LOG_DIR/)."
echo "Portal: http://127.0.0.1:${PORT}/  (admin: http://127.0.0.1:${PORT}/admin/)"
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload
