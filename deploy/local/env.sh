#!/usr/bin/env bash
# Addresses of the local stack. Sourced by the stack scripts, the Makefile and tests read the
# same variables, so one file says where everything listens. All on loopback; ports are away
# from the defaults so a developer's own servers do not collide.
: "${JOBSVC_PG_PORT:=55432}"
: "${JOBSVC_PG_DSN:=postgres://jobsvc:jobsvc@127.0.0.1:${JOBSVC_PG_PORT}/jobservice?sslmode=disable}"
: "${JOBSVC_REDIS_ADDR:=127.0.0.1:56379}"
: "${JOBSVC_RMQ_NAMESRV:=127.0.0.1:9876}"
: "${JOBSVC_RMQ_BROKER:=127.0.0.1:10911}"
# The broker's Prometheus exporter (deploy/local/rocketmq/broker.conf); jobctl backlog reads it.
: "${JOBSVC_RMQ_METRICS_PORT:=55557}"
: "${JOBSVC_RMQ_METRICS:=http://${JOBSVC_RMQ_BROKER%:*}:$JOBSVC_RMQ_METRICS_PORT/metrics}"
: "${JOBSVC_S3_ENDPOINT:=127.0.0.1:57070}"
: "${JOBSVC_S3_ACCESS_KEY:=jobsvc-access}"
: "${JOBSVC_S3_SECRET_KEY:=jobsvc-secret-key}"
: "${JOBSVC_NEO4J_URI:=bolt://127.0.0.1:57687}"
: "${JOBSVC_ES_URL:=http://127.0.0.1:59200}"
export JOBSVC_PG_PORT JOBSVC_PG_DSN JOBSVC_REDIS_ADDR JOBSVC_RMQ_NAMESRV JOBSVC_RMQ_BROKER \
  JOBSVC_RMQ_METRICS_PORT JOBSVC_RMQ_METRICS \
  JOBSVC_S3_ENDPOINT JOBSVC_S3_ACCESS_KEY JOBSVC_S3_SECRET_KEY JOBSVC_NEO4J_URI JOBSVC_ES_URL
