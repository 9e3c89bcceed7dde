#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The lake on an S3 bucket (bridge/lake_s3store.c) against a real S3 API
# server (S3Proxy): writers crashed after each of their store operations,
# recovered, every row visible once; a commit while the server is down,
# the lake reopened once it is back (test_lake_s3store.c).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/s3proxy.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

s3proxy_start lake
rc=0
TS_S3_ENDPOINT=$S3PROXY_ENDPOINT TS_SPOOL=$work/spool \
TS_S3_KEY_ID_FILE=$S3PROXY_KEY_ID_FILE TS_S3_SECRET_FILE=$S3PROXY_SECRET_FILE \
  "${TS_BIN_DIR:?}/test_lake_s3store" || rc=$?
# the server down at a commit: it fails, and the lake reopened once the
# server is back on the same port goes on (rows once, nothing hidden left)
orc=0
mkdir -p "$work/outage"
TS_S3_ENDPOINT=$S3PROXY_ENDPOINT TS_SPOOL=$work/spool \
TS_S3_KEY_ID_FILE=$S3PROXY_KEY_ID_FILE TS_S3_SECRET_FILE=$S3PROXY_SECRET_FILE \
  "$TS_BIN_DIR/test_lake_s3store" outage "$work/outage" >"$work/outage.out" 2>&1 &
outage_pid=$!
wait_file() { for _ in $(seq 1200); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
if wait_file "$work/outage/ready"; then
  s3proxy_kill
  touch "$work/outage/down"
  wait_file "$work/outage/failed" || orc=1
  s3proxy_restart || orc=1
  touch "$work/outage/up"
else
  orc=1
fi
wait "$outage_pid" || orc=1
grep -v ' notice: \| info: ' "$work/outage.out" || true
echo "server down at a commit: $([ "$orc" = 0 ] && echo ok || echo FAIL)"
[ "$orc" = 0 ] || rc=1
if [ "$rc" != 0 ]; then
  echo "--- s3proxy log"; tail -n 30 "$S3PROXY_LOG" || true
fi
exit "$rc"
