#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/fuzz/run.sh [TARGET] [SECONDS] - builds the libFuzzer target
# tests/fuzz/fuzz_TARGET.c (default: reading) with ASan+UBSan, replays every
# seed in tests/fuzz/corpus/TARGET/ once at full length, then fuzzes for SECONDS
# (default 20) on a scratch copy of that corpus. Exits non-zero if any input
# crashes, leaks, trips a sanitizer or breaks one of the target's invariants.
# Crash inputs are kept in the printed artifact directory. Needs clang and
# libclang-rt-14-dev (scripts/deps). `run.sh 600` still means reading, 600 s.
# Environment: CC_FUZZ (default clang), FUZZ_SRC_DIR (the common/ sources to
# build from, default the repo's common/; used to check a fuzzer against a
# broken copy). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

# --- the targets: what each links besides tests/fuzz/fuzz_TARGET.c ------------------------
# A new target: a fuzz_NAME.c, a corpus/NAME/ directory, and its three lines here
# (sources, -I directories, libraries). An optional tests/fuzz/NAME.dict is passed as -dict.
common=${FUZZ_SRC_DIR:-common}
declare -A sources includes libs
sources[reading]="$common/reading.c $common/civil.c $common/flags.c $common/err.c"
includes[reading]="$common"
libs[reading]=""
sources[config]="$common/config.c $common/hashtab.c $common/reading.c $common/civil.c $common/flags.c $common/err.c agent/agent_config.c hal/hal.c net/mqtt_cfg.c"
includes[config]="$common agent hal net"
libs[config]="-linih"
sources[tally_state]="agent/tally.c agent/agent_config.c agent/clock.c hal/counter.c hal/hal.c net/mqtt_cfg.c $common/config.c $common/hashtab.c $common/reading.c $common/civil.c $common/flags.c $common/err.c $common/log.c $common/now.c"
includes[tally_state]="$common agent hal net"
libs[tally_state]="-linih -lz -lm"
sources[verdict]="bridge/verdict.c $common/topics.c $common/reading.c $common/civil.c $common/flags.c $common/err.c $common/log.c $common/now.c"
includes[verdict]="$common bridge $(pkg-config --cflags-only-I libmosquitto | sed 's/-I//g')"
libs[verdict]="$(pkg-config --libs libmosquitto) -lpthread"
sources[mta]="mta/mta_file.c $common/civil.c $common/reading.c $common/config.c $common/hashtab.c $common/flags.c $common/err.c $common/log.c $common/now.c"
includes[mta]="$common mta"
libs[mta]="-linih -lz -lpthread"

sources[webhook_body]="bridge/webhook_body.c"
includes[webhook_body]="bridge"
libs[webhook_body]=""

target=reading
if [ $# -gt 0 ] && ! [[ $1 =~ ^[0-9]+$ ]]; then
  target=$1
  shift
fi
seconds=${1:-20}
[ -n "${sources[$target]+x}" ] ||
  { echo "fuzz: unknown target '$target' (known: ${!sources[*]})" >&2; exit 2; }
[[ $seconds =~ ^[0-9]+$ ]] || { echo "fuzz: SECONDS must be a whole number, not '$seconds'" >&2; exit 2; }
cc=${CC_FUZZ:-clang}
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (run scripts/deps)" >&2; exit 1; }
corpus=tests/fuzz/corpus/$target
[ -d "$corpus" ] || { echo "fuzz: no seed corpus $corpus" >&2; exit 1; }
dict=()
[ ! -f "tests/fuzz/$target.dict" ] || dict=(-dict="tests/fuzz/$target.dict")

work=$(mktemp -d "${TMPDIR:-/tmp}/ts-fuzz-$target.XXXXXX")
keep=0
cleanup() { if [ "$keep" = 0 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

inc=()
for d in ${includes[$target]}; do inc+=(-I "$d"); done
# shellcheck disable=SC2086 # the lists are word lists
"$cc" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE "${inc[@]}" \
  "tests/fuzz/fuzz_$target.c" ${sources[$target]} ${libs[$target]} \
  -o "$work/fuzz_$target"

mkdir -p "$work/corpus" "$work/artifacts"
cp "$corpus"/* "$work/corpus/"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TZ=${TZ:-UTC}

status=0
# 1. every seed once, at full length (the fuzzing run below caps inputs at 4096 bytes)
"$work/fuzz_$target" -artifact_prefix="$work/artifacts/" "$corpus"/* \
  >"$work/seeds.log" 2>&1 || status=$?
if [ "$status" = 0 ]; then
  # 2. fuzz
  "$work/fuzz_$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    "${dict[@]}" -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" \
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
  echo "fuzz: $target FAILED (exit $status); work dir kept: $work" >&2
  exit 1
fi
grep -E '^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ +DONE)' "$work/fuzz.log" || true
echo "fuzz: $target OK, ${seconds}s, corpus $(ls "$work/corpus" | wc -l) inputs"
