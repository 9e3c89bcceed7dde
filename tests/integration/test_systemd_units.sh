#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The systemd units (systemd/*.service), statically: `systemd-analyze verify` accepts them
# without a single warning, and `systemd-analyze security --offline=yes` rates their exposure
# at most 3.0 (agent) and 2.0 (bridge). Plus the settings the deployment relies on, among them
# the bridge's LimitNOFILE against the shipped [lake] max_open_files.
# (Running them under a real systemd: scripts/test-systemd.)
set -euo pipefail
src=${TS_SRC_DIR:?}
work=$(mktemp -d /tmp/ts-units.XXXXXX)
trap 'rm -rf "$work"' EXIT
. "$src/tests/integration/lib.sh"

command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (package systemd)"; exit 1; }
# verify wants ExecStart= to be executable here: point it at a stub of the same name
mkdir -p "$work/bin"
declare -A limit=([turnstile-agent]=3.0 [turnstile-bridge]=2.0)
for unit in turnstile-agent turnstile-bridge; do
  printf '#!/bin/sh\nexit 0\n' >"$work/bin/$unit"
  chmod +x "$work/bin/$unit"
  f=$src/systemd/$unit.service
  sed "s|^ExecStart=/usr/bin/$unit |ExecStart=$work/bin/$unit |" "$f" >"$work/$unit.service"
  check "$unit: ExecStart is /usr/bin/$unit" grep -q "^ExecStart=/usr/bin/$unit " "$f"

  rc=0
  systemd-analyze verify --man=no "$work/$unit.service" >"$work/$unit.verify" 2>&1 || rc=$?
  cat "$work/$unit.verify"
  check "$unit: systemd-analyze verify succeeds" test "$rc" -eq 0
  check "$unit: systemd-analyze verify says nothing" test ! -s "$work/$unit.verify"

  systemd-analyze security --offline=yes --no-pager "$f" >"$work/$unit.security" 2>&1 || true
  score=$(sed -n "s/.*Overall exposure level for $unit.service: \([0-9.]*\).*/\1/p" "$work/$unit.security")
  echo "$unit: exposure ${score:-?} (at most ${limit[$unit]})"
  check "$unit: exposure $score <= ${limit[$unit]}" \
    awk -v s="${score:-99}" -v m="${limit[$unit]}" 'BEGIN { exit !(s + 0 <= m + 0) }'
  [ "${score:-99}" = 99 ] && cat "$work/$unit.security"

  for want in Type=notify WatchdogSec= Restart=on-failure RestartPreventExitStatus=78 \
              User=$unit StateDirectory= ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
              NoNewPrivileges=yes DevicePolicy=closed 'CapabilityBoundingSet=$' \
              SystemCallFilter=@system-service MemoryDenyWriteExecute=yes \
              RestrictAddressFamilies=; do
    check "$unit: ${want%$}" grep -q "^$want" "$f"
  done
done

b=$src/systemd/turnstile-bridge.service
# LimitNOFILE covers 256 partitions with the shipped max_open_files (docs/lake.md): per
# partition max_open_files + 3 fds, plus 256 for Kafka, MQTT and the journal
nofile=$(sed -n 's/^LimitNOFILE=\([0-9][0-9]*\)$/\1/p' "$b")
max_open=$(sed -n 's/^max_open_files *= *\([0-9][0-9]*\).*/\1/p' "$src/config/bridge.conf.example")
check "bridge: LimitNOFILE set (${nofile:-none})" test -n "$nofile"
check "bridge: bridge.conf.example sets max_open_files (${max_open:-none})" test -n "$max_open"
check "bridge: LimitNOFILE ${nofile:-0} >= 256 x (max_open_files ${max_open:-?} + 3) + 256" \
  test "${nofile:-0}" -ge $((256 * (${max_open:-100000} + 3) + 256))
check "bridge: the unit says how LimitNOFILE was sized" grep -q '^#.*max_open_files' "$b"

a=$src/systemd/turnstile-agent.service
check "agent: store directory /var/lib/turnstile (agent.conf.example's store path)" \
  grep -q '^StateDirectory=turnstile$' "$a"
check "agent: example store path is under it" \
  grep -q '^path = /var/lib/turnstile/' "$src/config/agent.conf.example"
check "agent: serial and gpio groups" grep -q '^SupplementaryGroups=dialout gpio$' "$a"
check "agent: USB serial adapters allowed" grep -q '^DeviceAllow=char-ttyUSB rw$' "$a"
check "agent: gpiochips allowed" grep -q '^DeviceAllow=char-gpiochip rw$' "$a"
# clock = wait-sync calls adjtimex(3), i.e. the syscall clock_adjtime (glibc), which
# @system-service does not allow (scripts/test-systemd shows it under a real systemd)
check "agent: clock_adjtime allowed (clock = wait-sync)" \
  grep -q '^SystemCallFilter=adjtimex clock_adjtime clock_adjtime64$' "$a"
check "agent: no ProtectClock=yes (it denies adjtimex)" bash -c "! grep -q '^ProtectClock=yes' '$a'"
check "agent: the parsed filter lets adjtimex through" \
  bash -c "systemd-analyze security --offline=yes --no-pager '$a' | grep -q 'e.g. adjtimex is allowed'"
finish
