#!/usr/bin/env bash
# Elasticsearch 8: Elastic's integ-test-zip distribution from Maven Central (no bundled JDK; only
# the server plus the transport-netty4, x-pack-core, x-pack-security and apm modules; security is
# switched off below). Sourced by stack.sh.
#
# Elasticsearch refuses to run as root, so it runs as the system user $ES_USER. Everything it
# reads or writes must be reachable by that user: the unpacked distribution is used from
# $CACHE_DIR when the user can read it there, else from a copy in $ES_SHARED; the node's
# config/, data/, logs/ and tmp/ live in .stack/elasticsearch when the user can write there
# (a clone under /root, mode 700, is not reachable), else in $ES_FALLBACK_RUN, a folder fixed
# per STACK_DIR (the same scheme as the other components' fallback).

ES_VERSION=8.17.4 # newest 8.x integ-test-zip on Central that targets Java 17 (8.18+ want 21)
ES_USER=${JOBSVC_ES_USER:-jobsvc-es}
ES_SHARED=/var/tmp/job-service-stack
ES_FALLBACK_RUN="$ES_SHARED/$(printf %s "$STACK_DIR" | cksum | cut -d' ' -f1)/elasticsearch"
ES_DIST="$CACHE_DIR/elasticsearch-$ES_VERSION"
: "${JOBSVC_ES_HEAP:=512m}"
: "${JOBSVC_ES_TRANSPORT_PORT:=59300}"

es_hostport() {
  local hp=${JOBSVC_ES_URL#*://}
  hp=${hp%%/*}
  echo "${hp%:*} ${hp##*:}"
}

# as_es CMD...: runs CMD as the Elasticsearch user with a clean environment.
as_es() { runuser -u "$ES_USER" -- env -i PATH=/usr/local/bin:/usr/bin:/bin "$@"; }

# es_home: the distribution directory the Elasticsearch user can read.
es_home() {
  if as_es test -r "$ES_DIST/lib/elasticsearch-$ES_VERSION.jar"; then
    echo "$ES_DIST"
  else
    echo "$ES_SHARED/elasticsearch-$ES_VERSION"
  fi
}

# es_run_dir: where the node keeps config/, data/, logs/ and tmp/ (see the header).
es_run_dir() {
  local d="$STACK_DIR/elasticsearch"
  if [[ -d $d ]] && as_es test -w "$d" -a -x "$d"; then echo "$d"; else echo "$ES_FALLBACK_RUN"; fi
}

elasticsearch_install() {
  local jdk home tmp
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates # the health check
  jdk=$(java_home)
  if ! id -u "$ES_USER" >/dev/null 2>&1; then
    log "elasticsearch: creating system user $ES_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$ES_USER"
  fi
  if [[ ! -f $ES_DIST/.complete ]]; then
    command -v unzip >/dev/null 2>&1 || apt_install unzip
    log "elasticsearch: fetching integ-test-zip $ES_VERSION from Maven Central"
    tmp="$CACHE_DIR/elasticsearch-$ES_VERSION.tmp"
    rm -rf "$tmp" "$ES_DIST"
    mkdir -p "$tmp"
    mvn_run dependency:copy \
      -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
      -DoutputDirectory="$tmp"
    unzip -q "$tmp/elasticsearch-$ES_VERSION.zip" -d "$tmp"
    mv "$tmp/elasticsearch-$ES_VERSION" "$ES_DIST"
    rm -rf "$tmp"
    touch "$ES_DIST/.complete"
  fi
  home=$(es_home)
  if [[ $home != "$ES_DIST" && ! -f $home/.complete ]]; then
    log "elasticsearch: $ES_USER cannot read $ES_DIST; copying it to $home"
    mkdir -p "$ES_SHARED"
    chmod 755 "$ES_SHARED"
    rm -rf "$home.tmp" "$home"
    cp -a "$ES_DIST" "$home.tmp"
    chmod -R a+rX "$home.tmp"
    mv "$home.tmp" "$home"
  fi
  as_es "$jdk/bin/java" -version >/dev/null 2>&1 ||
    die "elasticsearch: $ES_USER cannot run $jdk/bin/java (set JOBSVC_JAVA_HOME to a JDK it can read)"
}

# es_prepare_run_dir: creates the node's directories and config, owned by the Elasticsearch user.
es_prepare_run_dir() {
  local d="$STACK_DIR/elasticsearch" run home host port
  mkdir -p "$d"
  chown "$ES_USER:" "$d"
  run=$(es_run_dir)
  home=$(es_home)
  read -r host port < <(es_hostport)
  if [[ $run != "$d" ]]; then
    log "elasticsearch: $ES_USER cannot write under $STACK_DIR; node files in $run"
    mkdir -p "$run"
    chmod 755 "$ES_SHARED" "${run%/*}"
    # Signpost for humans looking in the clone.
    ln -sfn "$run" "$d/data-is-here"
  fi
  mkdir -p "$run/config" "$run/data" "$run/logs" "$run/tmp"
  # A fresh copy of the distribution's config (the keystore the node created stays), with the
  # JVM's log/dump paths made absolute (they are relative to ES_HOME, which the Elasticsearch
  # user cannot write) and a smaller GC log.
  cp -r "$home/config/." "$run/config/"
  sed -i -e "s#file=logs/gc.log#file=$run/logs/gc.log#" \
    -e "s#filecount=32,filesize=64m#filecount=2,filesize=16m#" \
    -e "s#HeapDumpPath=data\$#HeapDumpPath=$run/logs#" \
    -e "s#ErrorFile=logs/#ErrorFile=$run/logs/#" "$run/config/jvm.options"
  cat >"$run/config/elasticsearch.yml" <<EOF
# Written by deploy/local/elasticsearch.sh on each start; edits are lost.
cluster.name: jobsvc-local
node.name: jobsvc-local
discovery.type: single-node
network.host: $host
http.port: $port
transport.port: $JOBSVC_ES_TRANSPORT_PORT
path.data: $run/data
path.logs: $run/logs
# A nearly full disk must not flip indices to read-only in a dev/test stack.
cluster.routing.allocation.disk.threshold_enabled: false
# The integ-test-zip ships x-pack-security, which would otherwise require auth and TLS.
xpack.security.enabled: false
EOF
  chown -R "$ES_USER:" "$run"
}

elasticsearch_start() {
  local run home jdk host port rc=0
  read -r host port < <(es_hostport)
  run=$(es_run_dir)
  pid_alive "$run/elasticsearch.pid" &&
    die "elasticsearch: already running (pid $(cat "$run/elasticsearch.pid")) but not healthy"
  port_open "$host" "$port" && die "elasticsearch: $host:$port is taken by another process"
  port_open "$host" "$JOBSVC_ES_TRANSPORT_PORT" &&
    die "elasticsearch: $host:$JOBSVC_ES_TRANSPORT_PORT is taken by another process"
  es_prepare_run_dir
  run=$(es_run_dir)
  home=$(es_home)
  jdk=$(java_home)
  log "elasticsearch: starting $ES_VERSION on $JOBSVC_ES_URL as $ES_USER (node files $run)"
  # -d daemonizes once the node has started; -p makes it write its pid. No heap pre-touch: keeps
  # the idle RSS well under the heap size. More descriptors if the hard limit allows.
  (
    cd "$run"
    ulimit -n 65535 2>/dev/null || true
    as_es HOME="$run" ES_JAVA_HOME="$jdk" ES_PATH_CONF="$run/config" ES_TMPDIR="$run/tmp" \
      ES_JAVA_OPTS="-Xms$JOBSVC_ES_HEAP -Xmx$JOBSVC_ES_HEAP -XX:-AlwaysPreTouch" \
      "$home/bin/elasticsearch" -d -p "$run/elasticsearch.pid"
  ) >"$run/logs/cli.out" 2>&1 || rc=$?
  if ((rc != 0)); then
    tail -n 20 "$run/logs/cli.out" >&2
    die "elasticsearch: failed to start (exit $rc); see $run/logs/"
  fi
  wait_for "elasticsearch (see $run/logs/jobsvc-local.log)" 120 elasticsearch_health
}

# elasticsearch_health: cluster health is green or yellow, and the response carries the
# X-Elastic-Product header that the official Go client insists on.
elasticsearch_health() {
  local resp
  resp=$(curl -fsS -m 5 -D - "$JOBSVC_ES_URL/_cluster/health") || return 1
  grep -qi '^x-elastic-product: *Elasticsearch' <<<"$resp" || return 1
  grep -Eq '"status":"(green|yellow)"' <<<"$resp"
}

elasticsearch_stop() { stop_pidfile "$(es_run_dir)/elasticsearch.pid" elasticsearch; }
