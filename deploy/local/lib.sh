#!/usr/bin/env bash
# Shared helpers for the local stack scripts. Sourced, never run.
# Every component script defines <name>_install, <name>_start, <name>_health, <name>_stop.
set -euo pipefail

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
# Data and logs live in the clone (ignored by git); downloads and builds are cached outside it
# so a fresh clone on the same machine reuses them.
STACK_DIR="${JOBSVC_STACK_DIR:-$REPO_ROOT/.stack}"
CACHE_DIR="${JOBSVC_CACHE_DIR:-$HOME/.cache/job-service}"
mkdir -p "$STACK_DIR" "$CACHE_DIR"

# shellcheck source=env.sh
source "$LOCAL_DIR/env.sh"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_for DESCRIPTION SECONDS CMD...: polls CMD once a second until it succeeds or time runs out.
wait_for() {
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "$what did not become healthy within ${secs}s"
}

# pid_alive FILE: true when FILE holds the pid of a live process.
pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pidfile FILE NAME: TERM, wait, then KILL.
stop_pidfile() {
  local f=$1 name=$2 pid i
  pid_alive "$f" || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  log "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

apt_updated=""
# apt_install PKG...: installs Debian packages that are missing.
apt_install() {
  local missing=()
  local p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  if [[ -z $apt_updated ]]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# java_home: prints a JDK home (java + javac): $JOBSVC_JAVA_HOME if set, else the one behind the
# javac on PATH, installing Debian's JDK 17 when there is none. Used by neo4j and elasticsearch.
java_home() {
  if [[ -n ${JOBSVC_JAVA_HOME:-} ]]; then echo "$JOBSVC_JAVA_HOME"; return 0; fi
  command -v javac >/dev/null 2>&1 || apt_install openjdk-17-jdk-headless >&2
  local javac
  javac=$(readlink -f "$(command -v javac)")
  echo "${javac%/bin/javac}"
}

# mvn_run ARGS...: runs Maven quietly with the JDK from java_home; shows its output only when it
# fails (Debian's Maven 3.8 prints stray colour codes even with -q -B).
mvn_run() {
  command -v mvn >/dev/null 2>&1 || apt_install maven
  local out
  if ! out=$(JAVA_HOME="$(java_home)" mvn -q -B -Dstyle.color=never "$@" 2>&1); then
    printf '%s\n' "$out" >&2
    return 1
  fi
}
