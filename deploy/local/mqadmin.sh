#!/usr/bin/env bash
# Apache RocketMQ admin CLI (mqadmin) for the local stack, from the cached RocketMQ jars.
#   deploy/local/mqadmin.sh <command> [options]     e.g. topicList, clusterList,
#       topicRoute -t JOB_TOPIC, sendMessage -t JOB_TOPIC -p '{"x":1}' -c TAGA -k key1,
#       queryMsgByKey -t JOB_TOPIC -k key1, consumeMessage -t JOB_TOPIC -g some-group
# The name server defaults to $JOBSVC_RMQ_NAMESRV (deploy/local/env.sh); -n overrides it.
# Logs go to .stack/rocketmq/logs/rocketmqlogs/tools*.log. Exit status 1 when the command failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$LOCAL_DIR/rocketmq.sh"
rocketmq_install
# MQAdminStartup exits 0 even when the command failed; its errors (SubCommandException stack
# traces) go to stderr, so turn those into exit status 1.
err=$(mktemp)
trap 'rm -f "$err"' EXIT
rc=0
rocketmq_admin "$@" 2>"$err" || rc=$?
cat "$err" >&2
if ((rc == 0)) && grep -q -e 'SubCommandException' -e '^Exception in thread' "$err"; then rc=1; fi
exit "$rc"
