#!/usr/bin/env bash
# Installs promtool (from Debian's prometheus package) for deploy/monitoring_test.go, which
# compiles the alerting rules with it. Idempotent; CI runs it before make test.
set -euo pipefail
if command -v promtool >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "promtool.sh: no apt-get; install promtool (Prometheus 2.x) another way" >&2
  exit 1
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
# The package's postinst starts no daemon without systemd; we only want the binary.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends prometheus >/dev/null
command -v promtool
