#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium: the console's browser tests launch it through
# Playwright's executable_path (Playwright's own browser download cannot work on a closed network).
# Installs the Debian package where it is missing; fails loudly (never skips) if it cannot run afterwards.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
say() { echo "ensure-chromium: $*" >&2; }

if [ ! -x "$CHROMIUM" ]; then
  say "installing chromium"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x "$CHROMIUM" ] || { say "$CHROMIUM is missing after installing the chromium package"; exit 1; }
version=$("$CHROMIUM" --headless --no-sandbox --disable-gpu --version 2>/dev/null) \
  || { say "$CHROMIUM does not run"; exit 1; }
say "$version"
