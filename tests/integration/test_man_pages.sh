#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The man pages (scripts/gen-man, built by CMake into man/, issue 15): each renders without a
# warning (groff -ww -z -man: no output), man -l shows it, and every option --help lists and
# every key --config-doc lists appears in the rendered page, under the sections a man page has.
set -euo pipefail
bin=${TS_BIN_DIR:?}
man_dir=$(dirname "$bin")/man
work=$(mktemp -d /tmp/ts-man.XXXXXX)
trap 'rm -rf "$work"' EXIT
. "${TS_SRC_DIR:?}/tests/integration/lib.sh"

for p in turnstile-agent turnstile-bridge turnstile-sim; do
  page=$man_dir/$p.1
  check "$p.1 built" test -s "$page"
  [ -s "$page" ] || continue
  groff -ww -z -man "$page" >"$work/groff" 2>&1 || echo "groff failed" >>"$work/groff"
  check "$p.1: groff -ww -z -man says nothing" test ! -s "$work/groff"
  cat "$work/groff"
  MANWIDTH=100 man --nh --nj --warnings -l "$page" 2>"$work/man.err" | col -b >"$work/$p.txt"
  check "$p.1: man -l renders it" grep -q "^NAME" "$work/$p.txt"
  check "$p.1: man -l without a warning" test ! -s "$work/man.err"
  for s in NAME SYNOPSIS DESCRIPTION OPTIONS "SEE ALSO"; do
    grep -q "^$s\$" "$work/$p.txt" || { echo "FAIL: $p.1 has no $s"; fails=$((fails + 1)); }
  done
  grep -q "^ *$p - " "$work/$p.txt" || { echo "FAIL: $p.1: NAME is not '$p - ...'"; fails=$((fails + 1)); }
  n=0
  for o in $("$bin/$p" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
    n=$((n + 1))
    grep -q -- "$o\\b" "$work/$p.txt" || { echo "FAIL: $p.1 lacks option $o"; fails=$((fails + 1)); }
  done
  check "$p.1: every one of the $n options of --help" test "$n" -gt 5
  if "$bin/$p" --help | grep -q -- --config-doc; then
    keys=$("$bin/$p" --config-doc | sed -n 's/^| `\([a-z_0-9]*\)` |.*/\1/p' | sort -u)
    k=0
    for key in $keys; do
      k=$((k + 1))
      grep -q "^ *$key (" "$work/$p.txt" || { echo "FAIL: $p.1 lacks config key $key"; fails=$((fails + 1)); }
    done
    check "$p.1: every one of the $k keys of --config-doc" test "$k" -gt 10
    check "$p.1: a CONFIGURATION section" grep -q '^CONFIGURATION$' "$work/$p.txt"
  fi
done
finish
