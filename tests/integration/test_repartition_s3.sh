#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --repartition's lake half on the object lake ([lake] url = s3://...) against
# a real S3 API server (S3Proxy): test_repartition's runs from 4 partitions to
# 8, stopped after every durable step and killed with SIGKILL at random, run
# again, checked against the model (every agent once, in its partition, with
# its set; the flushed windows' rows once; every checkpoint at its end).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/s3proxy.sh"

s3proxy_start lake
rc=0
TS_S3_ENDPOINT=$S3PROXY_ENDPOINT TS_S3_KEY_ID_FILE=$S3PROXY_KEY_ID_FILE \
TS_S3_SECRET_FILE=$S3PROXY_SECRET_FILE "${TS_BIN_DIR:?}/test_repartition" s3 || rc=$?
if [ "$rc" != 0 ]; then
  echo "--- s3proxy log"; tail -n 30 "$S3PROXY_LOG" || true
fi
exit "$rc"
