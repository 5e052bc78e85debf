#!/usr/bin/env bash
# S3: versitygw (Apache-2.0) with its posix backend, built from the Go module proxy.
# Sourced by stack.sh. Objects are plain files under .stack/s3/data/<bucket>/<key>; object
# metadata (ETag, Content-Type, user metadata, ACLs) goes to a sidecar directory, .stack/s3/meta,
# so ETags survive on any filesystem (--nometa would drop them; xattrs need filesystem support).

S3_VERSITYGW_VERSION=v1.8.0
S3_BIN="$CACHE_DIR/bin/versitygw"
S3_DIR="$STACK_DIR/s3"
S3_PID="$S3_DIR/versitygw.pid"

s3_install() {
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates # the health check
  if [[ -x $S3_BIN ]] && "$S3_BIN" --version >/dev/null 2>&1; then return 0; fi
  command -v go >/dev/null || die "s3: go is needed to build versitygw (go.mod says go >= 1.25)"
  log "s3: building versitygw $S3_VERSITYGW_VERSION (takes a few minutes)"
  mkdir -p "$CACHE_DIR/bin"
  # Run outside the repo so our go.mod does not get in the way of `go install pkg@version`.
  (cd "$CACHE_DIR" && GOBIN="$CACHE_DIR/bin" \
    go install "github.com/versity/versitygw/cmd/versitygw@$S3_VERSITYGW_VERSION")
  [[ -x $S3_BIN ]] || die "s3: go install did not produce $S3_BIN"
}

s3_start() {
  pid_alive "$S3_PID" && die "s3: versitygw already running (pid $(cat "$S3_PID")) but not healthy"
  port_open "${JOBSVC_S3_ENDPOINT%:*}" "${JOBSVC_S3_ENDPOINT##*:}" &&
    die "s3: $JOBSVC_S3_ENDPOINT is taken by another process"
  mkdir -p "$S3_DIR/data" "$S3_DIR/meta" "$S3_DIR/logs"
  log "s3: starting versitygw on $JOBSVC_S3_ENDPOINT (data $S3_DIR/data)"
  # Keys go through the environment (ROOT_ACCESS_KEY / ROOT_SECRET_KEY), not argv, so they do
  # not show in ps.
  ROOT_ACCESS_KEY="$JOBSVC_S3_ACCESS_KEY" ROOT_SECRET_KEY="$JOBSVC_S3_SECRET_KEY" \
    setsid "$S3_BIN" --port "$JOBSVC_S3_ENDPOINT" \
    posix --sidecar "$S3_DIR/meta" "$S3_DIR/data" \
    >>"$S3_DIR/logs/versitygw.log" 2>&1 </dev/null &
  echo $! >"$S3_PID"
  wait_for s3 60 s3_health
}

# s3_health: a SigV4-signed ListBuckets with the configured keys answers 200. Needs only curl
# (>= 7.75 for --aws-sigv4). The payload hash header is required by S3 and older curls do not
# add it themselves.
s3_health() {
  local empty_sha=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
  curl -fsS -m 5 -o /dev/null \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$JOBSVC_S3_ACCESS_KEY:$JOBSVC_S3_SECRET_KEY" \
    -H "x-amz-content-sha256: $empty_sha" "http://$JOBSVC_S3_ENDPOINT/"
}

s3_stop() { stop_pidfile "$S3_PID" versitygw; }
