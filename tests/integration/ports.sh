# SPDX-License-Identifier: Apache-2.0
# ports.sh - loopback ports for the servers the tests start. Sourced by
# broker.sh and kafka.sh (sourcing it twice is harmless).
#
#   port_accepts PORT   true if something accepts connections on 127.0.0.1:PORT
#   free_port           prints a port nobody listens on now, below the ephemeral
#                       range (the server that is given it still retries if
#                       another takes it first)

port_accepts() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Below the kernel's ephemeral range (ip_local_port_range, 32768 by default):
# a port in it may become the local end of any outgoing connection (a client
# of Kafka, S3Proxy...) between the choice and the server's bind, which then
# fails with EADDRINUSE (seen: e2e_cluster's webhook listener, on a loaded
# machine). Without room below it: 20000 to 59999, as before.
free_port() {
  local p lo=32768 base=10000 span
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
  span=$((lo - base))
  ((span >= 1000)) || { base=20000; span=40000; }
  for _ in $(seq 50); do
    p=$((base + (RANDOM * 32768 + RANDOM) % span))
    port_accepts "$p" || { echo "$p"; return 0; }
  done
  return 1
}
