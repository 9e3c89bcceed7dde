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
trap '[ -z "${S3FAULT_PID:-}" ] || kill "$S3FAULT_PID" 2>/dev/null || true; rm -rf "$work"' EXIT

s3proxy_start lake
s3proxy_fault_start --conditional
mkdir -p "$work/spool"
rc=0
TS_S3_ENDPOINT=$S3FAULT_ENDPOINT TS_SPOOL=$work/spool TS_S3_DIRECT=$S3PROXY_ENDPOINT \
TS_S3_KEY_ID_FILE=$S3PROXY_KEY_ID_FILE TS_S3_SECRET_FILE=$S3PROXY_SECRET_FILE \
  "${TS_BIN_DIR:?}/test_lake_s3fence" || rc=$?
refused=$(grep -c ' cond412$' "$work/plan.log" || true)
echo "conditional PUTs refused by the proxy (412): $refused"
if [ "$rc" != 0 ]; then
  echo "--- proxy log (last 20)"; tail -n 20 "$work/plan.log" || true; cat "$work/fault.err" || true
  echo "--- s3proxy log"; tail -n 30 "$S3PROXY_LOG" || true
fi
exit "$rc"
