#!/usr/bin/env bash
# Installs Debian's chromium when it is missing and we may (root). Browser tests
# skip without it locally; with PORTAL_REQUIRE_SERVICES=1 (CI) they fail instead.
set -u
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium is not installed (apt-get install chromium); browser tests will be skipped." >&2
  exit 0
fi
echo "Installing Debian's chromium for the browser tests..." >&2
export DEBIAN_FRONTEND=noninteractive
(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "Could not install chromium." >&2
exit 0
