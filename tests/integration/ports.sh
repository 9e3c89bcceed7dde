# SPDX-License-Identifier: Apache-2.0
# ports.sh - loopback ports for the servers the tests start. Sourced by
# broker.sh and kafka.sh (sourcing it twice is harmless).
#
#   port_accepts PORT   true if something accepts connections on 127.0.0.1:PORT
#   free_port           prints a port nobody listens on now (the server that is
#                       given it still retries if another takes it first)

port_accepts() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_accepts "$p" || { echo "$p"; return 0; }
  done
  return 1
}
