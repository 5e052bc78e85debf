#!/usr/bin/env bash
# Installs promtool (from Debian's prometheus package) for deploy/monitoring_test.go, which
# compiles the alerting rules with it. Idempotent: a present promtool is left alone.
# `make test` runs it first.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v promtool >/dev/null; then
  log "installing promtool (Debian package prometheus) for the alerting-rules test"
  apt_install prometheus >&2
fi
command -v promtool || die "promtool is not installed and could not be installed"
