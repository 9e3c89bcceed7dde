#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fence between two writers of one partition on the object lake
# (test_lake_s3fence.c): S3Proxy 2.6.0 ignores If-None-Match, so the lake
# talks to it through s3_fault_proxy.py --conditional, which refuses a
# conditional PUT of an existing key with 412 as AWS S3, GCS and MinIO do.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/s3proxy.sh"
work=$(mktemp -d)
proxy=
trap '[ -z "$proxy" ] || kill "$proxy" 2>/dev/null || true; rm -rf "$work"' EXIT

s3proxy_start lake
python3 "$here/s3_fault_proxy.py" "$S3PROXY_PORT" "$work/plan" "$work/fault.port" \
  --conditional "$S3PROXY_KEY_ID_FILE" "$S3PROXY_SECRET_FILE" 2>"$work/fault.err" &
proxy=$!
for _ in $(seq 100); do [ -s "$work/fault.port" ] && break; sleep 0.1; done
[ -s "$work/fault.port" ] || { echo "the fault proxy did not start"; cat "$work/fault.err"; exit 1; }
mkdir -p "$work/spool"
rc=0
TS_S3_ENDPOINT=http://localhost:$(cat "$work/fault.port") TS_SPOOL=$work/spool TS_S3_DIRECT=$S3PROXY_ENDPOINT \
TS_S3_KEY_ID_FILE=$S3PROXY_KEY_ID_FILE TS_S3_SECRET_FILE=$S3PROXY_SECRET_FILE \
  "${TS_BIN_DIR:?}/test_lake_s3fence" || rc=$?
refused=$(grep -c ' cond412$' "$work/plan.log" || true)
echo "conditional PUTs refused by the proxy (412): $refused"
if [ "$rc" != 0 ]; then
  echo "--- proxy log (last 20)"; tail -n 20 "$work/plan.log" || true; cat "$work/fault.err" || true
  echo "--- s3proxy log"; tail -n 30 "$S3PROXY_LOG" || true
fi
exit "$rc"
