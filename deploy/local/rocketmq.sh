#!/usr/bin/env bash
# Apache RocketMQ 5.x: one namesrv ($JOBSVC_RMQ_NAMESRV) and one broker ($JOBSVC_RMQ_BROKER,
# cluster DefaultCluster, broker-a), run with `java` from the Maven Central jars (no dist zip):
# deploy/local/rocketmq/pom.xml lists them, Maven copies their runtime classpath into
# $CACHE_DIR/rocketmq-<version>/lib. Data, logs and configs live in $STACK_DIR/rocketmq:
#   conf/     namesrv.conf, broker.conf (from deploy/local/rocketmq/broker.conf)
#   store/    broker store (commitlog, consumequeue, timerwheel, config/topics.json ...)
#   logs/     *.out (stdout/stderr), rocketmqlogs/*.log (namesrv.log, broker.log, store.log ...)
# Topics JOB_TOPIC, JOB_TOPIC_SCHEDULE (the ticker's fires) and FILE_EVENTS and groups
# job-service, job-service-schedule, job-service-filegc are created at start. deploy/local/mqadmin.sh runs the admin CLI against it. Sourced by stack.sh.

# 5.3.3: checked with this setup (listenPort honoured, timer messages, retry/DLQ). 5.3.4 does not
# resolve from Maven Central (rocketmq-client 5.3.4 and others are not published there).
RMQ_VERSION=${JOBSVC_RMQ_VERSION:-5.3.3}
RMQ_LIB=$CACHE_DIR/rocketmq-$RMQ_VERSION/lib
RMQ_DIR=$STACK_DIR/rocketmq
RMQ_JAVA=${JOBSVC_JAVA:-java}
RMQ_NS_HOST=${JOBSVC_RMQ_NAMESRV%:*}
RMQ_NS_PORT=${JOBSVC_RMQ_NAMESRV##*:}
RMQ_BROKER_HOST=${JOBSVC_RMQ_BROKER%:*}
RMQ_BROKER_PORT=${JOBSVC_RMQ_BROKER##*:}
RMQ_TOPICS=(JOB_TOPIC JOB_TOPIC_SCHEDULE FILE_EVENTS)
RMQ_GROUPS=(job-service job-service-schedule job-service-filegc)
RMQ_QUEUES=12

# Module access for RocketMQ's mmap / direct-buffer code on Java 9+ (run with these on Java 17;
# not tried without).
RMQ_JVM_OPENS=(
  --add-opens java.base/java.nio=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
  --add-exports java.base/sun.nio.ch=ALL-UNNAMED
)

# _rmq_jvm_common LOGBACK_XML: flags shared by namesrv, broker and mqadmin. user.home decides
# where RocketMQ writes its logs (user.home/logs/rocketmqlogs) and default stores; without
# rocketmq.home.dir (or ROCKETMQ_HOME) namesrv and broker exit at once. All the server jars are
# on one classpath, and the logback config found first there would be the broker's one for
# everything, so each process names its own (a resource in its jar).
_rmq_jvm_common() {
  printf '%s\n' "${RMQ_JVM_OPENS[@]}" \
    "-Duser.home=$RMQ_DIR" "-Drocketmq.home.dir=$RMQ_DIR" \
    "-Drmq.logback.configurationFile=$1" "-XX:ErrorFile=$RMQ_DIR/logs/hs_err_%p.log" \
    -cp "$RMQ_LIB/*"
}

# rocketmq_admin ARGS...: runs the mqadmin CLI (MQAdminStartup). The name server defaults to
# $JOBSVC_RMQ_NAMESRV; -n in ARGS overrides it.
rocketmq_admin() {
  local jvm
  mapfile -t jvm < <(_rmq_jvm_common rmq.tools.logback.xml)
  mkdir -p "$RMQ_DIR/logs"
  "$RMQ_JAVA" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${jvm[@]}" \
    "-Drocketmq.namesrv.addr=$JOBSVC_RMQ_NAMESRV" \
    org.apache.rocketmq.tools.command.MQAdminStartup "$@"
}

rocketmq_install() {
  [[ -f $RMQ_LIB/.complete ]] && return 0
  command -v "$RMQ_JAVA" >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  log "rocketmq: fetching RocketMQ $RMQ_VERSION jars from Maven Central into $RMQ_LIB"
  local tmp
  tmp=$(mktemp -d "$CACHE_DIR/rocketmq-$RMQ_VERSION.XXXXXX")
  (cd "$tmp" && mvn -q -B -f "$LOCAL_DIR/rocketmq/pom.xml" "-Drocketmq.version=$RMQ_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$tmp/lib") >"$tmp/mvn.log" 2>&1 \
    || { cat "$tmp/mvn.log" >&2; rm -rf "$tmp"; die "rocketmq: maven could not fetch RocketMQ $RMQ_VERSION"; }
  [[ -f $tmp/lib/rocketmq-broker-$RMQ_VERSION.jar ]] || { rm -rf "$tmp"; die "rocketmq: broker jar missing"; }
  touch "$tmp/lib/.complete"
  rm -rf "$RMQ_LIB"
  mkdir -p "${RMQ_LIB%/lib}"
  mv "$tmp/lib" "$RMQ_LIB"
  rm -rf "$tmp"
}

# _rmq_launch NAME LOGBACK_XML HEAP_FLAGS MAIN ARGS...: starts a server in the background, detached
# from this shell's session, with its pid in $RMQ_DIR/NAME.pid and output in logs/NAME.out.
_rmq_launch() {
  local name=$1 logback=$2 heap=$3 main=$4 jvm heapv
  shift 4
  mapfile -t jvm < <(_rmq_jvm_common "$logback")
  read -r -a heapv <<<"$heap"
  (cd "$RMQ_DIR" && exec setsid nohup "$RMQ_JAVA" "${heapv[@]}" "${jvm[@]}" "$main" "$@" \
    </dev/null >"$RMQ_DIR/logs/$name.out" 2>&1) &
  echo $! >"$RMQ_DIR/$name.pid"
}

_rmq_broker_booted() {
  port_open "$RMQ_BROKER_HOST" "$RMQ_BROKER_PORT" && grep -q 'boot success' "$RMQ_DIR/logs/broker.out"
}

rocketmq_start() {
  mkdir -p "$RMQ_DIR/conf" "$RMQ_DIR/logs" "$RMQ_DIR/store"
  printf 'listenPort=%s\nbindAddress=%s\n' "$RMQ_NS_PORT" "$RMQ_NS_HOST" >"$RMQ_DIR/conf/namesrv.conf"
  sed -e "s|@BROKER_HOST@|$RMQ_BROKER_HOST|g" -e "s|@BROKER_PORT@|$RMQ_BROKER_PORT|g" \
    -e "s|@NAMESRV@|$JOBSVC_RMQ_NAMESRV|g" -e "s|@STORE_DIR@|$RMQ_DIR/store|g" \
    -e "s|@METRICS_PORT@|${JOBSVC_RMQ_METRICS_PORT:-55557}|g" \
    "$LOCAL_DIR/rocketmq/broker.conf" >"$RMQ_DIR/conf/broker.conf"

  if ! pid_alive "$RMQ_DIR/namesrv.pid" NamesrvStartup; then
    log "rocketmq: starting namesrv on $JOBSVC_RMQ_NAMESRV"
    _rmq_launch namesrv rmq.namesrv.logback.xml "-Xms128m -Xmx256m" \
      org.apache.rocketmq.namesrv.NamesrvStartup -c "$RMQ_DIR/conf/namesrv.conf"
  fi
  wait_started "rocketmq namesrv" 60 "$RMQ_DIR/namesrv.pid" "$RMQ_DIR/logs/namesrv.out" \
    port_open "$RMQ_NS_HOST" "$RMQ_NS_PORT"

  if ! pid_alive "$RMQ_DIR/broker.pid" BrokerStartup; then
    log "rocketmq: starting broker on $JOBSVC_RMQ_BROKER"
    _rmq_launch broker rmq.broker.logback.xml "-Xms256m -Xmx512m -XX:MaxDirectMemorySize=512m" \
      org.apache.rocketmq.broker.BrokerStartup -c "$RMQ_DIR/conf/broker.conf" -n "$JOBSVC_RMQ_NAMESRV"
  fi
  wait_started "rocketmq broker" 120 "$RMQ_DIR/broker.pid" "$RMQ_DIR/logs/broker.out" _rmq_broker_booted

  # updateTopic / updateSubGroup are upserts; each is a JVM start, so run them side by side.
  log "rocketmq: creating topics ${RMQ_TOPICS[*]} and groups ${RMQ_GROUPS[*]}"
  local t g pid rc=0 out=$RMQ_DIR/logs/mqadmin-setup
  local -A jobs=()
  rm -f "$out".*.out
  for t in "${RMQ_TOPICS[@]}"; do
    rocketmq_admin updateTopic -b "$JOBSVC_RMQ_BROKER" -t "$t" -r "$RMQ_QUEUES" -w "$RMQ_QUEUES" \
      >"$out.topic-$t.out" 2>&1 &
    jobs[$!]=$out.topic-$t.out
  done
  for g in "${RMQ_GROUPS[@]}"; do
    rocketmq_admin updateSubGroup -b "$JOBSVC_RMQ_BROKER" -g "$g" >"$out.group-$g.out" 2>&1 &
    jobs[$!]=$out.group-$g.out
  done
  # mqadmin exits 0 even when the command failed: look for its success line.
  for pid in "${!jobs[@]}"; do
    if ! wait "$pid" || ! grep -q ' success' "${jobs[$pid]}"; then rc=1; cat "${jobs[$pid]}" >&2; fi
  done
  ((rc == 0)) || die "rocketmq: creating topics/groups failed (output above, logs in $RMQ_DIR/logs)"
  wait_for "rocketmq" 60 rocketmq_health
}

# Healthy: both ports open, and the name server routes JOB_TOPIC_SCHEDULE to our broker (so
# the broker is registered and the topics exist; the newest topic of the list, so a stack set
# up before it existed is not healthy until start has created it: updateTopic is an upsert).
rocketmq_health() {
  port_open "$RMQ_NS_HOST" "$RMQ_NS_PORT" && port_open "$RMQ_BROKER_HOST" "$RMQ_BROKER_PORT" || return 1
  [[ -f $RMQ_LIB/.complete ]] || return 1
  rocketmq_admin topicRoute -t "${RMQ_TOPICS[1]}" 2>/dev/null | grep -qF "\"$JOBSVC_RMQ_BROKER\""
}

rocketmq_stop() {
  stop_pidfile "$RMQ_DIR/broker.pid" "rocketmq broker" BrokerStartup
  stop_pidfile "$RMQ_DIR/namesrv.pid" "rocketmq namesrv" NamesrvStartup
}
