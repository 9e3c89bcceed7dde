#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian packages (scripts/package) of all three architectures, built and checked:
#   - each package: its Architecture, its programs built for it, Depends as dpkg-shlibdeps
#     makes them (libc6's minimum covers every GLIBC_ version the binary needs; the ARM
#     agent NEEDs the dynamic loader, ld-linux-*.so, which belongs to libc6), every dependency
#     in that architecture's bookworm at a version that satisfies it
# amd64, installed in a Debian 12 root booted with its own systemd under systemd-nspawn (the
# host is left alone; the container shares its network):
#   - install: files, the system users and groups, conffiles and their permissions, the state
#     directories; the example agent.conf is not started (its id is the example controller's);
#     the installed agent and bridge accept the installed configs (--check-config)
#   - run: an operator's agent.conf polling the installed turnstile-sim on loopback, with a
#     broker that never answers (so every reading stays in the store);
#     systemctl enable --now: the agent runs as turnstile-agent and fills /var/lib/turnstile
#   - upgrade to the next revision (same binaries, a changed agent.conf in the package) with
#     dpkg -i --force-confold while the agent runs: the operator's agent.conf is kept (the new
#     one lands in agent.conf.dpkg-dist), the agent is restarted, the store is the same file
#     and every reading in it survives; new readings follow with the next sequence numbers
#   - remove keeps the store and the config; purge deletes them (and keeps a non-empty lake)
# arm64, installed, upgraded and purged in an arm64 controller system under qemu-user
# (tests/integration/packages_arm64.sh, run by scripts/qemu-root arm64 run in a copy of the
# controller base root that scripts/rootfs uses too, .cache/rootfs-arm64).
# The amd64 root is made once (debootstrap: systemd and the packages' dependencies) and cached in
# the git-ignored .cache/packages-root; each run works on a copy. Needs root and systemd-nspawn.
set -euo pipefail
src=${TS_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src"
[ "$(id -u)" -eq 0 ] || { echo "test_packages: needs root (systemd-nspawn, chroot)"; exit 1; }
t_start=$SECONDS

missing=()
for p in systemd-container debootstrap sqlite3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "test_packages: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/ts-packages.XXXXXX)
nspawn_pid= sim_pid=
cleanup() {
  [ -z "$sim_pid" ] || { kill -KILL "$sim_pid" && wait "$sim_pid"; } 2>/dev/null || true
  if [ -n "$nspawn_pid" ]; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true   # nspawn shuts the container down
    for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  [ -n "${TS_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/integration/lib.sh"

# --- the packages: three architectures, this revision (1) and the next (2) -------------------
t0=$SECONDS
TS_PKG_OUT=$work/v1 TS_PKG_REVISION=1 ./scripts/package amd64 arm64 armhf >"$work/package.log" 2>&1 ||
  { cat "$work/package.log"; exit 1; }
grep '^package: turnstile-' "$work/package.log"
v1=$(dpkg-deb -f "$work"/v1/turnstile-agent_*_amd64.deb Version)
# revision 2: the same binaries; each shipped conffile gets one more comment line (and the
# postinst the new file's md5, as scripts/package would write it)
mkdir -p "$work/v2" "$work/unpacked"
for deb in "$work"/v1/*.deb; do
  d=$work/unpacked/$(basename "$deb" .deb)
  dpkg-deb -R "$deb" "$d"
  v2=${v1%-*}-$((${v1##*-} + 1))
  sed -i "s/^Version: .*/Version: $v2/" "$d/DEBIAN/control"
  if [ -f "$d/DEBIAN/conffiles" ]; then
    while read -r f; do
      old=$(md5sum <"$d$f" | cut -d' ' -f1)
      echo "# (revision $v2)" >>"$d$f"
      new=$(md5sum <"$d$f" | cut -d' ' -f1)
      sed -i "s/$old/$new/" "$d/DEBIAN/postinst"
    done <"$d/DEBIAN/conffiles"
  fi
  (cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$d/DEBIAN/md5sums"
  dpkg-deb --root-owner-group -Zxz --build "$d" "$work/v2/" >/dev/null
done
echo "packages $v1 and $v2 in $((SECONDS - t0)) s: $(cd "$work/v1" && ls | xargs)"

# --- each architecture's packages -------------------------------------------------------------
dep5() { # FILE: the copyright format 1.0's structure: Format first; every Files paragraph has
  # Copyright and License; every licence it names has a stand-alone License paragraph
  awk 'NR == 1 && $0 != "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" {print "no Format line"; bad = 1}
       /^$/ {if (files && !(cr && lic)) {print "a Files paragraph without Copyright or License"; bad = 1}; files = cr = lic = 0; next}
       /^Files:/ {files = 1} /^Copyright:/ {cr = 1}
       /^License:/ {lic = 1; if (files) {n = split(substr($0, 10), l, / and /); for (i = 1; i <= n; i++) {gsub(/ /, "", l[i]); used[l[i]] = 1}}
                    else defined[$2] = 1}
       END {if (files && !(cr && lic)) bad = 1
            for (x in used) if (!(x in defined)) {print "no License paragraph for " x; bad = 1}
            if (!("Apache-2.0" in used)) {print "Apache-2.0 not used"; bad = 1}
            exit bad}' "$1"
}
available() { # ARCH NAME: the versions of NAME in ARCH's bookworm (ARM: the sysroot's Packages file)
  if [ "$1" = amd64 ]; then
    apt-cache show "$2:amd64" 2>/dev/null | sed -n 's/^Version: //p'
  else
    awk -v n="$2" '/^Package: /{p=$2} /^Version: / && p == n {print $2}' \
      "$src/.cache/sysroot-$1"/var/lib/apt/lists/*_binary-"$1"_Packages
  fi
}
satisfiable() { # ARCH DEPENDS: every dependency has a version in ARCH's bookworm that satisfies it
  local arch=$1 dep name min v ok
  while read -r dep; do
    name=${dep%% *} min=
    [[ $dep != *'|'* ]] || { echo "$arch: alternatives not expected: $dep"; return 1; }
    [[ $dep != *"(>= "* ]] || { min=${dep#*(>= }; min=${min%)}; }
    ok=
    while read -r v; do
      [ -z "$min" ] || dpkg --compare-versions "$v" ge "$min" || continue
      ok=$v
    done < <(available "$arch" "$name")
    [ -n "$ok" ] || { echo "$arch: nothing satisfies $dep (has: $(available "$arch" "$name" | xargs))"; return 1; }
  done < <(tr ',' '\n' <<<"$2" | sed 's/^ *//')
}
glibc_covered() { # DEPENDS ELF: libc6's minimum >= the newest GLIBC_x.y the binary needs
  local min need
  min=$(sed -nE 's/.*libc6 \(>= ([^)]*)\).*/\1/p' <<<"$1")
  need=$(readelf -V --wide "$2" | grep -oE 'Name: GLIBC_[0-9.]+' | sed 's/Name: GLIBC_//' | sort -uV | tail -1)
  [ -n "$min" ] && [ -n "$need" ] && dpkg --compare-versions "$min" ge "$need"
}
for arch in amd64 arm64 armhf; do
  case $arch in amd64) elf=x86-64 ;; arm64) elf=aarch64 ;; armhf) elf='ARM, EABI5' ;; esac
  for p in turnstile-agent turnstile-bridge turnstile-sim; do
    deb=$work/v1/${p}_${v1}_$arch.deb
    check "$p ($arch): built" test -s "$deb"
    [ -s "$deb" ] || continue
    d=$work/x/$arch/$p
    mkdir -p "$d" && dpkg-deb -x "$deb" "$d"
    deps=$(dpkg-deb -f "$deb" Depends)
    echo "$p ($arch) Depends: $deps"
    check "$p ($arch): Architecture $arch" test "$(dpkg-deb -f "$deb" Architecture)" = "$arch"
    check "$p ($arch): /usr/bin/$p is an $arch program" bash -c "file -b '$d/usr/bin/$p' | grep -q '$elf'"
    check "$p ($arch): libc6's minimum covers every GLIBC_ version it needs" glibc_covered "$deps" "$d/usr/bin/$p"
    check "$p ($arch): every dependency is in bookworm $arch at a sufficient version" satisfiable "$arch" "$deps"
    # issue 15: the man page (written from the program's --help and --config-doc, under
    # qemu-user for ARM), the licence, the changelog, a DEP-5 copyright file
    page=$d/usr/share/man/man1/$p.1.gz
    check "$p ($arch): man page $p.1.gz" test -s "$page"
    check "$p ($arch): it renders without a warning (groff -ww)" bash -c \
      "zcat '$page' | groff -ww -z -man 2>&1 | { ! grep .; } && zcat '$page' | grep -q '^\.SH OPTIONS'"
    check "$p ($arch): LICENSE is the Apache License 2.0" cmp -s "$d/usr/share/doc/$p/LICENSE" "$src/LICENSE"
    check "$p ($arch): CHANGELOG.md.gz" bash -c "zcat '$d/usr/share/doc/$p/CHANGELOG.md.gz' | cmp -s - '$src/CHANGELOG.md'"
    check "$p ($arch): copyright is machine-readable (DEP-5), Apache-2.0" dep5 "$d/usr/share/doc/$p/copyright"
  done
  # the live dashboard in the bridge's package (issue 15)
  d=$work/x/$arch/turnstile-bridge
  for f in index.html app.js style.css; do
    check "turnstile-bridge ($arch): the dashboard's $f in /usr/share/turnstile/dashboard" \
      cmp -s "$d/usr/share/turnstile/dashboard/$f" "$src/build-dashboard/www/$f"
  done
  check "turnstile-bridge ($arch): the dashboard's mosquitto listeners as an example, http_dir there" \
    grep -q '^http_dir /usr/share/turnstile/dashboard$' "$d/usr/share/doc/turnstile-bridge/examples/mosquitto/turnstile-dashboard.conf"
done
# the case that stopped scripts/package: on ARM the agent NEEDs the dynamic loader
# (__stack_chk_guard), which belongs to libc6; no package of that name exists
for arch in arm64 armhf; do
  check "turnstile-agent ($arch) NEEDs ld-linux-*.so (libc6's): Depends names libc6, no ld-linux" bash -c \
    "readelf -d '$work/x/$arch/turnstile-agent/usr/bin/turnstile-agent' | grep -q 'NEEDED.*\[ld-linux-' &&
     dpkg-deb -f '$work/v1/turnstile-agent_${v1}_$arch.deb' Depends | grep -q 'libc6 (>= ' &&
     ! dpkg-deb -f '$work/v1/turnstile-agent_${v1}_$arch.deb' Depends | grep -q ld-linux"
done

# --- the Debian 12 root: systemd and the packages' dependencies (once) ------------------------
deps=$(for deb in "$work"/v1/*_amd64.deb; do dpkg-deb -f "$deb" Depends; done |
       tr ',' '\n' | sed -E 's/\(.*//; s/[[:space:]]//g' | grep . | sort -u | paste -sd,)
pkgs=systemd,systemd-sysv,dbus,procps,$deps
base=$src/.cache/packages-root
if [ "$(cat "$base/.ts-root" 2>/dev/null)" != "$pkgs" ]; then
  t0=$SECONDS
  mirror=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources \
             /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null | head -1 | tr -d ' ' || true)
  echo "making the container root in $base (once): $pkgs"
  rm -rf "$base.tmp"
  mkdir -p "$(dirname "$base")"
  nice debootstrap --variant=minbase --include="$pkgs" bookworm "$base.tmp" \
    "${mirror:-http://deb.debian.org/debian}" >"$base.log" 2>&1 ||
    { tail -20 "$base.log"; exit 1; }
  chroot "$base.tmp" systemctl mask console-getty.service >/dev/null 2>&1 || true
  echo "$pkgs" >"$base.tmp/.ts-root"
  rm -rf "$base"
  mv "$base.tmp" "$base"
  echo "root made in $((SECONDS - t0)) s"
fi
root=$work/root
cp -a "$base" "$root"
mkdir -p "$root/root/v1" "$root/root/v2" "$root/srv/sim"
cp "$work"/v1/*_amd64.deb "$root/root/v1/"
cp "$work"/v2/*_amd64.deb "$root/root/v2/"

# --- boot ---------------------------------------------------------------------------------------
t_boot=$SECONDS
systemd-nspawn --quiet --directory="$root" --boot --register=no --keep-unit \
  --console=read-only --machine=ts-packages --system-call-filter=@clock \
  >"$work/console.log" 2>&1 &
nspawn_pid=$!
init=
for _ in $(seq 100); do
  init=$(pgrep -P "$nspawn_pid" -x systemd || true)
  [ -n "$init" ] && break
  sleep 0.1
done
[ -n "$init" ] || { echo "the container did not boot:"; cat "$work/console.log"; exit 1; }
inside() { nsenter --target "$init" --mount --uts --ipc --net --pid -- "$@"; }
wait_for() { # SECONDS CMD...: until CMD succeeds
  local n=$(($1 * 10)); shift
  for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
wait_for 30 inside systemctl is-system-running --quiet --wait || true
echo "container booted in $((SECONDS - t_boot)) s ($(inside systemctl is-system-running 2>/dev/null || true))"
prop() { inside systemctl show "${2:-turnstile-agent}" -p "$1" --value; }
active() { [ "$(prop ActiveState)/$(prop SubState)" = active/running ]; }
dpkg_in() { inside env DEBIAN_FRONTEND=noninteractive dpkg "$@" </dev/null; }
debs() { (cd "$root/root/$1" && ls *.deb | sed "s|^|/root/$1/|"); }   # the container's paths

# --- install ------------------------------------------------------------------------------------
rc=0
dpkg_in -i $(debs v1) >"$work/install.log" 2>&1 || rc=$?
cat "$work/install.log"
check "dpkg -i of the three packages succeeds" test "$rc" = 0
for p in turnstile-agent turnstile-bridge turnstile-sim; do
  check "$p $v1 installed" test "$(inside dpkg-query -W -f='${Status} ${Version}' "$p")" = "install ok installed $v1"
done
for f in /usr/bin/turnstile-agent /usr/bin/turnstile-bridge /usr/bin/turnstile-sim; do
  check "$f is executable" test -x "$root$f"
done
for u in turnstile-agent turnstile-bridge; do
  check "unit $u.service in /lib/systemd/system, as in systemd/" cmp -s "$root/lib/systemd/system/$u.service" "systemd/$u.service"
  check "/usr/share/doc/$u/copyright" test -s "$root/usr/share/doc/$u/copyright"
  check "$u's Documentation= exists: deployment.md" test -s "$root/usr/share/doc/$u/deployment.md"
  check "user $u: system account, no login, no home" bash -c \
    "e=\$(chroot '$root' getent passwd $u) && IFS=: read -r _ _ uid _ _ home shell <<<\"\$e\" && [ \"\$uid\" -lt 1000 ] && [ \"\$home\" = /nonexistent ] && [ \"\$shell\" = /usr/sbin/nologin ]"
done
check "/usr/share/doc/turnstile-sim/copyright" test -s "$root/usr/share/doc/turnstile-sim/copyright"
for p in turnstile-agent turnstile-bridge turnstile-sim; do
  check "$p's man page installed: /usr/share/man/man1/$p.1.gz" test -s "$root/usr/share/man/man1/$p.1.gz"
done
check "the dashboard's page installed, owned by turnstile-bridge" bash -c \
  "chroot '$root' dpkg -S /usr/share/turnstile/dashboard/index.html | grep -q '^turnstile-bridge: '"
check "group gpio exists" bash -c "chroot '$root' getent group gpio >/dev/null"
check "turnstile-agent is in dialout and gpio" bash -c \
  "g=\" \$(chroot '$root' id -nG turnstile-agent) \"; [[ \$g == *' dialout '* && \$g == *' gpio '* ]]"
check "conffiles: /etc/turnstile/agent.conf" bash -c "chroot '$root' dpkg-query -W -f='\${Conffiles}' turnstile-agent | grep -q '^ /etc/turnstile/agent.conf '"
check "conffiles: /etc/turnstile/bridge.conf" bash -c "chroot '$root' dpkg-query -W -f='\${Conffiles}' turnstile-bridge | grep -q '^ /etc/turnstile/bridge.conf '"
check "agent.conf is the example, root:turnstile-agent 0640" bash -c \
  "cmp -s '$root/etc/turnstile/agent.conf' config/agent.conf.example && [ \"\$(chroot '$root' stat -c '%U:%G %a' /etc/turnstile/agent.conf)\" = 'root:turnstile-agent 640' ]"
check "bridge.conf is the example, root:turnstile-bridge 0640" bash -c \
  "cmp -s '$root/etc/turnstile/bridge.conf' config/bridge.conf.example && [ \"\$(chroot '$root' stat -c '%U:%G %a' /etc/turnstile/bridge.conf)\" = 'root:turnstile-bridge 640' ]"
check "/var/lib/turnstile: turnstile-agent 0750" \
  test "$(chroot "$root" stat -c '%U:%G %a' /var/lib/turnstile)" = "turnstile-agent:turnstile-agent 750"
check "/var/lib/turnstile-bridge/lake: turnstile-bridge 0750" \
  test "$(chroot "$root" stat -c '%U:%G %a' /var/lib/turnstile-bridge/lake)" = "turnstile-bridge:turnstile-bridge 750"
check "gpiochip udev rule installed" grep -q 'GROUP="gpio"' "$root/lib/udev/rules.d/60-turnstile-gpio.rules"
check "example agent.conf: the postinst says to edit it" grep -q 'agent.conf is the example' "$work/install.log"
check "example agent.conf: the agent is neither enabled nor started" bash -c \
  "[ \"\$(nsenter --target $init --mount --pid -- systemctl is-enabled turnstile-agent 2>&1)\" = disabled ] && ! nsenter --target $init --mount --pid -- systemctl --quiet is-active turnstile-agent"
check "example bridge.conf: the bridge is neither enabled nor started" bash -c \
  "[ \"\$(nsenter --target $init --mount --pid -- systemctl is-enabled turnstile-bridge 2>&1)\" = disabled ] && ! nsenter --target $init --mount --pid -- systemctl --quiet is-active turnstile-bridge"
check "installed agent accepts the installed agent.conf" inside /usr/bin/turnstile-agent --check-config -c /etc/turnstile/agent.conf
check "installed bridge accepts the installed bridge.conf" inside /usr/bin/turnstile-bridge --check-config -c /etc/turnstile/bridge.conf
inside /usr/bin/turnstile-agent --version

# --- run: the installed simulator and the operator's agent.conf -----------------------------
mkfifo "$root/srv/sim/in"
chroot "$root" /usr/bin/turnstile-sim --tcp 127.0.0.1:0 --agent-config /srv/sim/devices.conf \
  --generate --turnstiles 4 --speed 60 <"$root/srv/sim/in" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
exec 7>"$root/srv/sim/in"
wait_for 10 grep -q '^listening' "$work/sim.out" || { echo "turnstile-sim did not start"; cat "$work/sim.err"; exit 1; }
wait_for 5 test -s "$root/srv/sim/devices.conf"
{
  printf '# the operator'"'"'s configuration\n[agent]\nid = pkg-ctrl-1\nstation_id = S1\n'
  printf 'poll_interval_ms = 500\nclock = trust\n'
  printf '[store]\npath = /var/lib/turnstile/agent.db\n'
  # a broker that never answers: nothing is acknowledged, every reading stays in the store
  printf '[mqtt]\nhost = 127.0.0.1\nport = 1\nreconnect_max_ms = 2000\n'
  cat "$root/srv/sim/devices.conf"
} >"$root/etc/turnstile/agent.conf"   # rewritten in place: owner and mode stay
cp "$root/etc/turnstile/agent.conf" "$work/agent.conf.mine"
inside systemctl enable --now turnstile-agent >/dev/null 2>&1 || true
wait_for 30 active || true
check "systemctl enable --now: the agent is active (running)" active
db=$root/var/lib/turnstile/agent.db
rows() { sqlite3 -cmd '.timeout 5000' "$db" "$1" 2>/dev/null; }
wait_for 20 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$db' 'SELECT count(*) FROM readings' 2>/dev/null || echo 0)\" -ge 40 ]" || true
pid1=$(prop MainPID)
check "the agent runs as turnstile-agent" test "$(inside ps -o user= -p "$pid1" | tr -d ' ')" = turnstile-agent
check "its store is /var/lib/turnstile/agent.db, owned by turnstile-agent" \
  test "$(chroot "$root" stat -c %U /var/lib/turnstile/agent.db)" = turnstile-agent
sleep 1
read -r n1 min1 max1 < <(rows 'SELECT count(*), min(seq), max(seq) FROM readings' | tr '|' ' ')
created1=$(rows 'SELECT created_ms FROM meta')
ino1=$(stat -c %i "$db")
echo "before the upgrade: $n1 readings in the store (seq $min1..$max1), agent pid $pid1"
check "the store holds readings (at least 40)" test "${n1:-0}" -ge 40

# --- upgrade while it runs ------------------------------------------------------------------
t_up=$SECONDS
rc=0
dpkg_in -i --force-confold $(debs v2) >"$work/upgrade.log" 2>&1 || rc=$?
cat "$work/upgrade.log"
check "dpkg -i --force-confold of $v2 succeeds" test "$rc" = 0
for p in turnstile-agent turnstile-bridge turnstile-sim; do
  check "$p $v2 installed" test "$(inside dpkg-query -W -f='${Status} ${Version}' "$p")" = "install ok installed $v2"
done
check "the operator's agent.conf is kept" cmp -s "$root/etc/turnstile/agent.conf" "$work/agent.conf.mine"
check "the package's new agent.conf is beside it (agent.conf.dpkg-dist)" \
  grep -q "revision $v2" "$root/etc/turnstile/agent.conf.dpkg-dist"
check "agent.conf still root:turnstile-agent 0640" \
  test "$(chroot "$root" stat -c '%U:%G %a' /etc/turnstile/agent.conf)" = "root:turnstile-agent 640"
check "the unmodified bridge.conf is replaced by the new one" grep -q "revision $v2" "$root/etc/turnstile/bridge.conf"
check "bridge.conf (still the example) is not started" bash -c "! nsenter --target $init --mount --pid -- systemctl --quiet is-active turnstile-bridge"
restarted() { local p; p=$(prop MainPID); [ "$p" != 0 ] && [ "$p" != "$pid1" ] && active; }
wait_for 30 restarted || true
pid2=$(prop MainPID)
echo "upgrade and restart in $((SECONDS - t_up)) s: agent pid $pid1 -> $pid2"
check "the agent was restarted by the upgrade (new pid, active)" restarted
check "the agent is still enabled" test "$(inside systemctl is-enabled turnstile-agent)" = enabled
wait_for 20 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$db' 'SELECT max(seq) FROM readings')\" -gt $((max1 + 20)) ]" || true
inside systemctl stop turnstile-agent
check "systemctl stop: clean exit" test "$(prop ExecMainStatus)" = 0
read -r n2 min2 max2 < <(rows 'SELECT count(*), min(seq), max(seq) FROM readings' | tr '|' ' ')
kept=$(rows "SELECT count(*) FROM readings WHERE seq BETWEEN $min1 AND $max1")
echo "after the upgrade: $n2 readings (seq $min2..$max2), $kept of the $n1 from before"
check "the store is the same file (inode, created_ms)" \
  test "$(stat -c %i "$db")/$(rows 'SELECT created_ms FROM meta')" = "$ino1/$created1"
check "every reading from before the upgrade is still there ($n1)" test "$kept" = "$n1"
check "sequence numbers continue (no gap at the start, no reuse)" \
  test "$min2/$(rows "SELECT count(*) FROM readings WHERE seq > $max1")" = "$min1/$((max2 - max1))"
check "new readings after the restart" test "${max2:-0}" -gt "$max1"
inside journalctl -q -o cat -u turnstile-agent >"$work/journal.txt" 2>&1 || true
check "the journal: the store opened twice, created once" bash -c \
  "[ \$(grep -c 'store /var/lib/turnstile/agent.db: opened' '$work/journal.txt') -ge 2 ] && [ \$(grep -c 'store /var/lib/turnstile/agent.db: created' '$work/journal.txt') -eq 1 ]"

# --- remove, purge --------------------------------------------------------------------------
inside systemctl start turnstile-agent
wait_for 30 active || true
dpkg_in -r turnstile-agent >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; }
check "remove: the agent is stopped" bash -c "! nsenter --target $init --mount --pid -- pgrep -x turnstile-agent"
check "remove: binary gone, store and agent.conf kept" bash -c \
  "[ ! -e '$root/usr/bin/turnstile-agent' ] && [ -s '$db' ] && cmp -s '$root/etc/turnstile/agent.conf' '$work/agent.conf.mine'"
check "remove: state config-files" test "$(inside dpkg-query -W -f='${Status}' turnstile-agent)" = "deinstall ok config-files"
dpkg_in -P turnstile-agent >>"$work/remove.log" 2>&1 || { cat "$work/remove.log"; }
check "purge: /var/lib/turnstile and agent.conf(.dpkg-dist) gone" bash -c \
  "[ ! -e '$root/var/lib/turnstile' ] && [ ! -e '$root/etc/turnstile/agent.conf' ] && [ ! -e '$root/etc/turnstile/agent.conf.dpkg-dist' ]"
check "purge: no unit state left (not enabled, not masked)" bash -c \
  "[ ! -e '$root/etc/systemd/system/turnstile-agent.service' ] && [ ! -e '$root/etc/systemd/system/multi-user.target.wants/turnstile-agent.service' ]"
mkdir -p "$root/var/lib/turnstile-bridge/lake/turnstile" "$root/var/lib/turnstile-bridge/other"
echo x >"$root/var/lib/turnstile-bridge/lake/turnstile/part.csv.gz"
dpkg_in -P turnstile-bridge turnstile-sim >>"$work/remove.log" 2>&1 || { cat "$work/remove.log"; }
check "purge of the bridge: its state goes, a non-empty lake stays" bash -c \
  "[ ! -e '$root/var/lib/turnstile-bridge/other' ] && [ -s '$root/var/lib/turnstile-bridge/lake/turnstile/part.csv.gz' ] && [ ! -e '$root/etc/turnstile' ]"
check "purge: nothing of the packages left installed" bash -c \
  "! nsenter --target $init --mount -- dpkg-query -W -f='\${Status}\n' turnstile-agent turnstile-bridge turnstile-sim 2>/dev/null | grep -q installed"

# --- as in an image build: chroot, no systemd running, agent.conf provisioned beforehand --------
mkdir -p "$root/etc/turnstile"
cp "$work/agent.conf.mine" "$root/etc/turnstile/agent.conf"
rc=0
DEBIAN_FRONTEND=noninteractive chroot "$root" dpkg -i --force-confold "$(debs v2 | grep turnstile-agent_)" \
  </dev/null >"$work/image.log" 2>&1 || rc=$?
cat "$work/image.log"
check "image build: dpkg -i in a chroot succeeds" test "$rc" = 0
check "image build: the provisioned agent.conf is kept" cmp -s "$root/etc/turnstile/agent.conf" "$work/agent.conf.mine"
check "image build: the unit is enabled for the first boot" \
  test -L "$root/etc/systemd/system/multi-user.target.wants/turnstile-agent.service"
check "image build: nothing started" bash -c "! nsenter --target $init --mount --pid -- pgrep -x turnstile-agent"

# --- arm64: install, upgrade, purge in an arm64 system under qemu-user ---------------------------
# the controller base root (scripts/rootfs's, cached in .cache/rootfs-arm64: made once, about 3
# minutes), a copy; the steps run in scripts/qemu-root's namespaces (packages_arm64.sh)
t_arm=$SECONDS
base64=$(./scripts/qemu-root arm64 base "$work/v1/turnstile-agent_${v1}_arm64.deb")
echo "arm64 base root ready in $((SECONDS - t_arm)) s"
aroot=$work/root-arm64
cp -a "$base64" "$aroot"
mkdir -p "$aroot/root/v1" "$aroot/root/v2"
cp "$work"/v1/*_arm64.deb "$aroot/root/v1/"
cp "$work"/v2/*_arm64.deb "$aroot/root/v2/"
rc=0
src=$src work=$work root=$aroot v1=$v1 v2=$v2 \
  ./scripts/qemu-root arm64 run bash tests/integration/packages_arm64.sh || rc=$?
read -r p f <"$work/arm64.counts" || { p=0 f=1; }
passes=$((passes + p)) fails=$((fails + f))
check "arm64: the steps in the arm64 system ran to their end" test "$rc" = 0
echo "arm64 part in $((SECONDS - t_arm)) s"
echo "test_packages: $((SECONDS - t_start)) s"
finish
