#!/usr/bin/env bash
# Neo4j: the community DBMS from Maven Central, run embedded by our own launcher
# (deploy/local/neo4j/Neo4jLauncher.java) with only Bolt open and auth disabled.
# Sourced by stack.sh. Jars and the compiled launcher are cached in $CACHE_DIR/neo4j-<version>;
# the database lives in .stack/neo4j/home (data/, logs/debug.log), stdout in .stack/neo4j/logs.

NEO4J_VERSION=5.26.30 # 5.26 LTS: the last line that runs on Java 17
NEO4J_CACHE="$CACHE_DIR/neo4j-$NEO4J_VERSION"
NEO4J_SRC="$LOCAL_DIR/neo4j"
NEO4J_DIR="$STACK_DIR/neo4j"
NEO4J_PID="$NEO4J_DIR/neo4j.pid"
NEO4J_OUT="$NEO4J_DIR/logs/neo4j.out"
: "${JOBSVC_NEO4J_HEAP:=512m}"
: "${JOBSVC_NEO4J_PAGECACHE_MIB:=64}"

neo4j_hostport() {
  local hp=${JOBSVC_NEO4J_URI#*://}
  hp=${hp%%/*}
  echo "${hp%:*} ${hp##*:}"
}

neo4j_install() {
  local jdk
  jdk=$(java_home)
  if [[ ! -f $NEO4J_CACHE/lib/.complete ]]; then
    log "neo4j: fetching Neo4j $NEO4J_VERSION jars from Maven Central"
    rm -rf "$NEO4J_CACHE/lib.tmp"
    mkdir -p "$NEO4J_CACHE"
    mvn_run -f "$NEO4J_SRC/pom.xml" -Dneo4j.version="$NEO4J_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$NEO4J_CACHE/lib.tmp"
    rm -rf "${NEO4J_CACHE:?}/lib"
    mv "$NEO4J_CACHE/lib.tmp" "$NEO4J_CACHE/lib"
    touch "$NEO4J_CACHE/lib/.complete"
  fi
  # Recompile when the source differs from the one compiled (by content: clones share the cache).
  local sum
  sum=$(sha256sum <"$NEO4J_SRC/Neo4jLauncher.java")
  if [[ ! -f $NEO4J_CACHE/classes/Neo4jLauncher.class ||
    $(cat "$NEO4J_CACHE/classes/.source-sha256" 2>/dev/null) != "$sum" ]]; then
    log "neo4j: compiling Neo4jLauncher"
    rm -rf "$NEO4J_CACHE/classes"
    mkdir -p "$NEO4J_CACHE/classes"
    "$jdk/bin/javac" --release 17 -nowarn -cp "$NEO4J_CACHE/lib/*" -d "$NEO4J_CACHE/classes" \
      "$NEO4J_SRC/Neo4jLauncher.java"
    echo "$sum" >"$NEO4J_CACHE/classes/.source-sha256"
  fi
}

neo4j_start() {
  local jdk host port
  read -r host port < <(neo4j_hostport)
  pid_alive "$NEO4J_PID" && die "neo4j: already running (pid $(cat "$NEO4J_PID")) but not healthy"
  port_open "$host" "$port" && die "neo4j: $host:$port is taken by another process"
  jdk=$(java_home)
  mkdir -p "$NEO4J_DIR/home" "$NEO4J_DIR/logs"
  [[ -f $NEO4J_OUT ]] && mv -f "$NEO4J_OUT" "$NEO4J_OUT.prev"
  log "neo4j: starting Neo4j $NEO4J_VERSION on bolt://$host:$port (home $NEO4J_DIR/home)"
  # JVM flags as in Neo4j's own neo4j.conf (the add-opens let the page cache use direct buffers).
  setsid "$jdk/bin/java" -Xms128m -Xmx"$JOBSVC_NEO4J_HEAP" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED -Dio.netty.tryReflectionSetAccessible=true \
    -Djdk.nio.maxCachedBufferSize=1024 -Dlog4j2.disable.jmx=true \
    -cp "$NEO4J_CACHE/lib/*:$NEO4J_CACHE/classes" \
    Neo4jLauncher "$NEO4J_DIR/home" "$host" "$port" "$JOBSVC_NEO4J_PAGECACHE_MIB" \
    >"$NEO4J_OUT" 2>&1 </dev/null &
  echo $! >"$NEO4J_PID"
  wait_for "neo4j (see $NEO4J_OUT)" 180 neo4j_ready
}

# neo4j_ready: our process says the default database is available and Bolt answers.
neo4j_ready() {
  pid_alive "$NEO4J_PID" && grep -q '^NEO4J READY' "$NEO4J_OUT" && neo4j_health
}

# neo4j_health: a Bolt handshake succeeds (the server agrees on a protocol version), which a
# plain open port would not prove. Offers 5.0-5.8 and 4.4; any non-zero answer is a Bolt server.
neo4j_health() {
  local host port reply
  read -r host port < <(neo4j_hostport)
  # shellcheck disable=SC2016
  reply=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "\x60\x60\xb0\x17\x00\x08\x08\x05\x00\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00" >&3
    head -c 4 <&3 | od -An -tx1' _ "$host" "$port") || return 1
  reply=${reply//[[:space:]]/}
  [[ ${#reply} -eq 8 && $reply != 00000000 ]]
}

neo4j_stop() { stop_pidfile "$NEO4J_PID" neo4j; }
