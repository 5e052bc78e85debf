#!/usr/bin/env bash
# Redis: our own redis-server (not the Debian systemd service) on $JOBSVC_REDIS_ADDR, config
# generated at every start, no persistence (data lives only while the server runs).
# Sourced by stack.sh.

REDIS_HOST=${JOBSVC_REDIS_ADDR%:*}
REDIS_PORT=${JOBSVC_REDIS_ADDR##*:}
REDIS_DIR=$STACK_DIR/redis

redis_install() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  apt_install redis-server redis-tools
}

redis_start() {
  mkdir -p "$REDIS_DIR"
  cat >"$REDIS_DIR/redis.conf" <<EOF
# Written by deploy/local/redis.sh at every start.
bind $REDIS_HOST
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $REDIS_DIR/redis.pid
logfile $REDIS_DIR/redis.log
dir $REDIS_DIR
save ""
appendonly no
databases 16
maxmemory 256mb
maxmemory-policy noeviction
EOF
  if ! pid_alive "$REDIS_DIR/redis.pid" redis-server; then
    log "redis: starting on $JOBSVC_REDIS_ADDR"
    redis-server "$REDIS_DIR/redis.conf" || die "redis-server failed (log: $REDIS_DIR/redis.log)"
  fi
  wait_for "redis" 30 redis_health
}

redis_health() {
  [[ $(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

redis_stop() {
  stop_pidfile "$REDIS_DIR/redis.pid" redis redis-server
}
