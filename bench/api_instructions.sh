#!/usr/bin/env bash
# Instructions per token lookup in-process, counted by callgrind (repeatable whatever the machine's
# speed or load, unlike seconds): docs/benchmarks.md, "Token lookups per second".
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/lead_api REDIS_URL=redis://127.0.0.1:6379/1 \
#       bash bench/api_instructions.sh 200
#
# Seeds as bench/api.py --part token does (its own database: everything seeded is deleted first),
# makes 100 lookups uncounted, then counts N lookups through config.wsgi inside sys.call_tracing
# (the one function callgrind is told to count within).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-200}"
out=$(valgrind --tool=callgrind --collect-atstart=no --toggle-collect=sys_call_tracing \
    --callgrind-out-file=/dev/null .venv/bin/python bench/api_instructions.py "$n" 2>&1)
total=$(echo "$out" | grep -o "Collected : [0-9]*" | grep -o "[0-9]*")
echo "instructions per lookup: $((total / n))"
