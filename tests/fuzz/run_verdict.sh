#!/usr/bin/env bash
# tests/fuzz/run_verdict.sh [SECONDS] - builds the libFuzzer target for the
# bridge's verdict (fuzz_verdict.c, bridge/verdict.c with the reading codec and
# the MQTT topic form) with ASan+UBSan, replays every seed in corpus/verdict/
# once, then fuzzes for SECONDS (default 20) on a scratch copy of it. Exits
# non-zero if any input crashes, leaks, trips a sanitizer or breaks one of the
# target's invariants; crash inputs are kept in the printed work directory.
# (The same steps as run.sh for fuzz_reading; to be folded into one script
# that takes a target name.) Needs clang and libclang-rt-14-dev (scripts/deps).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-20}
cc=${CC_FUZZ:-clang}
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (run scripts/deps)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ts-fuzz-verdict.XXXXXX")
keep=0
cleanup() { if [ "$keep" = 0 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

"$cc" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
  -I common -I bridge $(pkg-config --cflags libmosquitto) \
  tests/fuzz/fuzz_verdict.c bridge/verdict.c bridge/mqtt_link.c common/reading.c \
  common/flags.c common/err.c common/log.c common/now.c \
  $(pkg-config --libs libmosquitto) -lpthread -o "$work/fuzz_verdict"

mkdir -p "$work/corpus" "$work/artifacts"
cp tests/fuzz/corpus/verdict/* "$work/corpus/"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TZ=${TZ:-UTC}

status=0
"$work/fuzz_verdict" -artifact_prefix="$work/artifacts/" tests/fuzz/corpus/verdict/* \
  >"$work/seeds.log" 2>&1 || status=$?
if [ "$status" = 0 ]; then
  "$work/fuzz_verdict" -max_total_time="$seconds" -max_len=2048 -timeout=10 -rss_limit_mb=2048 \
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
