#!/usr/bin/env bash
# A second RocketMQ broker master (opt-in: `deploy/local/stack.sh up rocketmq2`, never part of
# the default component list): broker-b of DefaultCluster on $JOBSVC_RMQ_BROKER2 (default
# 127.0.0.1:10921; it also listens on port-2 and port+1), registered with the same name server,
# store, logs and config in $STACK_DIR/rocketmq2. JOB_TOPIC, JOB_TOPIC_SCHEDULE, FILE_EVENTS
# and the groups are created on it too, so producers spread messages over both masters. It needs `rocketmq` up.
# Careful on a shared stack: once it is up, half of everyone's messages land on it.
# internal/chaos starts its own private two-master cluster instead (chaos.RocketMQ.AddMaster).
# shellcheck source=deploy/local/rocketmq.sh
source "$LOCAL_DIR/rocketmq.sh"

: "${JOBSVC_RMQ_BROKER2:=127.0.0.1:10921}"
RMQ2_DIR=$STACK_DIR/rocketmq2
RMQ2_HOST=${JOBSVC_RMQ_BROKER2%:*}
RMQ2_PORT=${JOBSVC_RMQ_BROKER2##*:}

rocketmq2_install() { rocketmq_install; }

_rmq2_booted() {
  port_open "$RMQ2_HOST" "$RMQ2_PORT" && grep -q 'boot success' "$RMQ2_DIR/logs/broker.out"
}

rocketmq2_start() {
  rocketmq_health >/dev/null 2>&1 || die "rocketmq2: the first broker and name server must be up (stack.sh up rocketmq)"
  mkdir -p "$RMQ2_DIR/conf" "$RMQ2_DIR/logs" "$RMQ2_DIR/store"
  sed -e "s|@BROKER_HOST@|$RMQ2_HOST|g" -e "s|@BROKER_PORT@|$RMQ2_PORT|g" \
    -e "s|@NAMESRV@|$JOBSVC_RMQ_NAMESRV|g" -e "s|@STORE_DIR@|$RMQ2_DIR/store|g" \
    -e "s|^brokerName=.*|brokerName=broker-b|" \
    "$LOCAL_DIR/rocketmq/broker.conf" >"$RMQ2_DIR/conf/broker.conf"
  if ! pid_alive "$RMQ2_DIR/broker.pid" BrokerStartup; then
    log "rocketmq2: starting broker-b on $JOBSVC_RMQ_BROKER2"
    # _rmq_launch writes its pid and output under $RMQ_DIR: point it at ours for this call.
    RMQ_DIR=$RMQ2_DIR _rmq_launch broker rmq.broker.logback.xml "-Xms256m -Xmx512m -XX:MaxDirectMemorySize=512m" \
      org.apache.rocketmq.broker.BrokerStartup -c "$RMQ2_DIR/conf/broker.conf" -n "$JOBSVC_RMQ_NAMESRV"
  fi
  wait_started "rocketmq2 broker" 120 "$RMQ2_DIR/broker.pid" "$RMQ2_DIR/logs/broker.out" _rmq2_booted
  log "rocketmq2: creating topics ${RMQ_TOPICS[*]} and groups ${RMQ_GROUPS[*]} on broker-b"
  local t g rc=0 out=$RMQ2_DIR/logs/mqadmin-setup
  for t in "${RMQ_TOPICS[@]}"; do
    rocketmq_admin updateTopic -b "$JOBSVC_RMQ_BROKER2" -t "$t" -r "$RMQ_QUEUES" -w "$RMQ_QUEUES" >"$out.topic-$t.out" 2>&1
    grep -q ' success' "$out.topic-$t.out" || { rc=1; cat "$out.topic-$t.out" >&2; }
  done
  for g in "${RMQ_GROUPS[@]}"; do
    rocketmq_admin updateSubGroup -b "$JOBSVC_RMQ_BROKER2" -g "$g" >"$out.group-$g.out" 2>&1
    grep -q ' success' "$out.group-$g.out" || { rc=1; cat "$out.group-$g.out" >&2; }
  done
  ((rc == 0)) || die "rocketmq2: creating topics/groups failed (output above)"
  wait_for "rocketmq2" 60 rocketmq2_health
}

# Healthy: its port is open and the name server routes JOB_TOPIC_SCHEDULE (the newest topic,
# see rocketmq_health) to it.
rocketmq2_health() {
  port_open "$RMQ2_HOST" "$RMQ2_PORT" || return 1
  rocketmq_admin topicRoute -t "${RMQ_TOPICS[1]}" 2>/dev/null | grep -qF "\"$JOBSVC_RMQ_BROKER2\""
}

# rocketmq2_kill9 crashes broker-b (the fault the chaos test injects); `up rocketmq2` restarts it.
rocketmq2_kill9() {
  [[ -f $RMQ2_DIR/broker.pid ]] && kill -9 "$(cat "$RMQ2_DIR/broker.pid")" 2>/dev/null || true
}

rocketmq2_stop() {
  stop_pidfile "$RMQ2_DIR/broker.pid" "rocketmq2 broker" BrokerStartup
}
