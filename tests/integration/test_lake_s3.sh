#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The object lake's S3 client against a real S3 API server (S3Proxy), through
# a proxy that injects server errors, resets, lost answers and hostile
# answers, and against a port where nothing listens (test_lake_s3.c); then a
# put that starts while the server is down and lands once it is restarted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/s3proxy.sh"
work=$(mktemp -d)
trap 'kill "${S3FAULT_PID:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

s3proxy_start lake
s3proxy_fault_start
down=$(free_port)

rc=0
TS_S3_ENDPOINT=$S3PROXY_ENDPOINT TS_S3_FAULT_ENDPOINT=$S3FAULT_ENDPOINT \
TS_S3_PLAN=$work/plan TS_S3_DOWN_ENDPOINT=http://127.0.0.1:$down \
TS_S3_KEY_ID_FILE=$S3PROXY_KEY_ID_FILE TS_S3_SECRET_FILE=$S3PROXY_SECRET_FILE \
  "${TS_BIN_DIR:?}/test_lake_s3" || rc=$?
# the server down when a put starts, restarted while it retries: the put
# lands, and what was written before the restart is still there
orc=0
s3proxy_kill
TS_S3_ENDPOINT=$S3PROXY_ENDPOINT TS_S3_KEY_ID_FILE=$S3PROXY_KEY_ID_FILE \
TS_S3_SECRET_FILE=$S3PROXY_SECRET_FILE \
  "$TS_BIN_DIR/test_lake_s3" outage after-restart "written across a restart" >"$work/outage.out" 2>&1 &
outage_pid=$!
sleep 2
s3proxy_restart || orc=1
wait "$outage_pid" || orc=1
cat "$work/outage.out"
grep -q '^outage: written after \([2-9]\|[1-9][0-9]\) attempts' "$work/outage.out" || orc=1
[ "$(s3proxy_curl "$S3PROXY_ENDPOINT/lake/outage/after-restart")" = "written across a restart" ] || orc=1
[ "$(s3proxy_curl "$S3PROXY_ENDPOINT/lake/mp/small.csv.gz" | wc -c)" = 1000 ] || orc=1
echo "server restarted: $([ "$orc" = 0 ] && echo ok || echo FAIL)"
[ "$orc" = 0 ] || rc=1
if [ "$rc" != 0 ]; then
  echo "--- fault proxy requests"; tail -n 30 "$work/plan.log" 2>/dev/null || true
  echo "--- s3proxy log"; tail -n 30 "$S3PROXY_LOG" || true
fi
exit "$rc"
