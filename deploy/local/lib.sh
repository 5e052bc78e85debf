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

# Servers that refuse to run as root (postgres) need a data folder their own user can reach; a
# clone under /root (mode 700) is not. They fall back to a folder outside the clone, fixed per
# STACK_DIR so every run finds the same data; `stack.sh reset` deletes it with STACK_DIR.
FALLBACK_DIR="/var/tmp/job-service-stack/$(printf %s "$STACK_DIR" | cksum | cut -d' ' -f1)"

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

# wait_started DESCRIPTION SECONDS PIDFILE LOG CMD...: like wait_for, but gives up at once when the
# process in PIDFILE has exited, and shows the end of LOG on failure.
wait_started() {
  local what=$1 secs=$2 pidfile=$3 logf=$4; shift 4
  local i
  for ((i = 0; i < secs; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! pid_alive "$pidfile"; then
      tail -n 30 "$logf" >&2 2>/dev/null || true
      die "$what exited during startup (log: $logf)"
    fi
    sleep 1
  done
  tail -n 30 "$logf" >&2 2>/dev/null || true
  die "$what did not become healthy within ${secs}s (log: $logf)"
}

# pid_alive FILE [PATTERN]: true when FILE holds the pid of a live process (whose command line
# contains PATTERN, if given: a pidfile left over from before a reboot may name another process).
pid_alive() {
  [[ -f $1 ]] || return 1
  local pid
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -z ${2:-} ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop_pidfile FILE NAME [PATTERN]: TERM, wait, then KILL (PATTERN as for pid_alive).
stop_pidfile() {
  local f=$1 name=$2 pid i
  pid_alive "$f" "${3:-}" || { rm -f "$f"; return 0; }
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

# run_as USER CMD...: runs CMD as USER when we are root (from /, which USER can always enter),
# else as ourselves.
run_as() {
  local user=$1; shift
  if ((EUID == 0)); then (cd / && runuser -u "$user" -- "$@"); else "$@"; fi
}

# user_dir USER NAME: prints a data folder for component NAME that USER owns and can write:
# $STACK_DIR/NAME when USER can reach it, else $FALLBACK_DIR/NAME.
user_dir() {
  local user=$1 name=$2 d=$STACK_DIR/$2
  mkdir -p "$d"
  ((EUID == 0)) || { echo "$d"; return 0; }
  chown "$user:" "$d"
  if runuser -u "$user" -- test -w "$d" 2>/dev/null; then echo "$d"; return 0; fi
  # Both levels must be enterable by USER whatever the umask.
  [[ -d ${FALLBACK_DIR%/*} ]] || mkdir -m 755 "${FALLBACK_DIR%/*}" 2>/dev/null || true
  [[ -d $FALLBACK_DIR ]] || mkdir -m 755 "$FALLBACK_DIR" 2>/dev/null || true
  mkdir -p "$FALLBACK_DIR/$name"
  chown "$user:" "$FALLBACK_DIR/$name"
  # Signpost for humans looking in the clone.
  ln -sfn "$FALLBACK_DIR/$name" "$d/data-is-here"
  echo "$FALLBACK_DIR/$name"
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
