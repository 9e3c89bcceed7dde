#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] - builds the libFuzzer target for the reading
# parser (fuzz_reading.c) with ASan+UBSan, replays every seed in corpus/ once
# at full length, then fuzzes for SECONDS (default 20) on a scratch copy of
# the corpus. Exits non-zero if any input crashes, leaks, trips a sanitizer
# or breaks the parse/format round trip. Crash inputs are kept in the
# printed artifact directory. Needs clang and libclang-rt-14-dev (scripts/deps).
# Environment: CC_FUZZ (default clang), FUZZ_SRC_DIR (sources to build from,
# default the repo's common/; used to check the fuzzer against a broken copy).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-20}
cc=${CC_FUZZ:-clang}
src=${FUZZ_SRC_DIR:-common}
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (run scripts/deps)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ts-fuzz.XXXXXX")
keep=0
cleanup() { if [ "$keep" = 0 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

"$cc" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I "$src" \
  tests/fuzz/fuzz_reading.c "$src/reading.c" "$src/flags.c" "$src/err.c" \
  -o "$work/fuzz_reading"

mkdir -p "$work/corpus" "$work/artifacts"
seeds=$(find tests/fuzz/corpus -maxdepth 1 -type f | sort)   # corpus/verdict/ is fuzz_verdict's
# shellcheck disable=SC2086
cp $seeds "$work/corpus/"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TZ=${TZ:-UTC}

status=0
# 1. every seed once, at full length (the fuzzing run below caps inputs at 4096 bytes)
"$work/fuzz_reading" -artifact_prefix="$work/artifacts/" $seeds \
  >"$work/seeds.log" 2>&1 || status=$?
if [ "$status" = 0 ]; then
  # 2. fuzz
  "$work/fuzz_reading" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" \
    >"$work/fuzz.log" 2>&1 || status=$?
fi

if [ "$status" != 0 ]; then
  keep=1
  cat "$work"/seeds.log "$work"/fuzz.log 2>/dev/null | tail -n 60 >&2
  for f in "$work"/artifacts/*; do
    [ -e "$f" ] || continue
    echo "fuzz: crashing input $f:" >&2
    od -An -tx1 -v "$f" | tr -d ' \n' | fold -w 128 >&2
    echo >&2
  done
  echo "fuzz: FAILED (exit $status); work dir kept: $work" >&2
  exit 1
fi
grep -E '^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ +DONE)' "$work/fuzz.log" || true
echo "fuzz: OK, ${seconds}s, corpus $(ls "$work/corpus" | wc -l) inputs"
