#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The lake on an S3 bucket (bridge/lake_s3store.c) against a real S3 API
# server (S3Proxy): writers crashed after each of their store operations,
# recovered, every row visible once (test_lake_s3store.c).
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
if [ "$rc" != 0 ]; then
  echo "--- s3proxy log"; tail -n 30 "$S3PROXY_LOG" || true
fi
exit "$rc"
