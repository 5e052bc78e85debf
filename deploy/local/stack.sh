#!/usr/bin/env bash
# Local stack: install what is missing, start, health-check and stop the real servers.
#   deploy/local/stack.sh up     [component...]   install + start + wait healthy (idempotent)
#   deploy/local/stack.sh down   [component...]   stop (data kept in .stack/)
#   deploy/local/stack.sh status [component...]   health of each
#   deploy/local/stack.sh reset                   down, then delete .stack/
# Components: postgres redis rocketmq s3 neo4j elasticsearch (default: all present).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL=(postgres redis rocketmq s3 neo4j elasticsearch)
cmd=${1:-status}; shift || true
comps=("$@")
if ((${#comps[@]} == 0)); then
  for c in "${ALL[@]}"; do [[ -f $LOCAL_DIR/$c.sh ]] && comps+=("$c"); done
fi
for c in "${comps[@]}"; do
  [[ -f $LOCAL_DIR/$c.sh ]] || die "unknown component $c"
  # shellcheck disable=SC1090
  source "$LOCAL_DIR/$c.sh"
done

case $cmd in
  up)
    for c in "${comps[@]}"; do
      if "${c}_health" >/dev/null 2>&1; then log "$c already healthy"; continue; fi
      "${c}_install"
      "${c}_start"
      log "$c healthy"
    done ;;
  down)
    for ((i = ${#comps[@]} - 1; i >= 0; i--)); do "${comps[i]}_stop"; done ;;
  status)
    rc=0
    for c in "${comps[@]}"; do
      if "${c}_health" >/dev/null 2>&1; then echo "$c: healthy"; else echo "$c: DOWN"; rc=1; fi
    done
    exit $rc ;;
  reset)
    for ((i = ${#comps[@]} - 1; i >= 0; i--)); do "${comps[i]}_stop"; done
    rm -rf "$STACK_DIR" "$FALLBACK_DIR" ;;
  *) die "usage: stack.sh up|down|status|reset [component...]" ;;
esac
