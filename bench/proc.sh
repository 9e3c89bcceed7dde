# SPDX-License-Identifier: Apache-2.0
# proc.sh - measuring processes from /proc, for the bench scripts. Source it
# with `work` set (a temporary directory the script removes).
#   tick          a 0.1 s sleep without a fork (a read that times out on a FIFO
#                 nobody writes)
#   sample PID    records VmHWM (kB) in hwm[PID] and user+sys ticks in
#                 ticks[PID]; fails once the process has exited (gone, or a zombie)
#   ticks_s T     clock ticks as seconds
#   field NAME F  the NAME=value of the RESULT line in file F

mkfifo "$work/tick"
exec {tick_fd}<>"$work/tick"
tick() { read -r -t 0.1 -u "$tick_fd" _ || true; }

declare -A hwm=() ticks=()
sample() {
  local pid=$1 line k v rest
  local -a f
  { read -r line <"/proc/$pid/stat"; } 2>/dev/null || return 1
  rest=${line##*) }
  [ "${rest:0:1}" != Z ] || return 1
  read -ra f <<<"$rest" # f[0] = state (field 3): utime is field 14, stime 15
  ticks[$pid]=$((f[11] + f[12]))
  { while read -r k v rest; do
      if [ "$k" = VmHWM: ]; then hwm[$pid]=$v; break; fi
    done <"/proc/$pid/status"; } 2>/dev/null || true
  return 0
}
clk_tck=$(getconf CLK_TCK)
ticks_s() { awk -v t="$1" -v h="$clk_tck" 'BEGIN { printf "%.2f", t / h }'; }
field() { sed -n "s/^RESULT.* $1=\([^ ]*\).*$/\1/p" "$2"; } # NAME FILE
