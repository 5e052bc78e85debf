#!/usr/bin/env bash
# Installs headless Chromium (Debian's chromium package) for the console's browser test when it
# is missing, and prints the browser's path. Idempotent: a present browser is left alone.
#   deploy/local/chromium.sh        # install if needed, print the path
# The console test (admin/console_browser_test.go) finds the browser through $JOBSVC_CHROMIUM
# or the PATH; `make test` runs this first.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

chromium_path() {
  local c
  for c in "${JOBSVC_CHROMIUM:-}" chromium chromium-browser google-chrome; do
    [[ -n $c ]] && command -v "$c" 2>/dev/null && return 0
  done
  return 1
}

if ! chromium_path >/dev/null; then
  log "installing chromium (Debian package) for the console browser test"
  apt_install chromium >&2
fi
chromium_path || die "chromium is not installed and could not be installed"
