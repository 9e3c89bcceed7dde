# SPDX-License-Identifier: Apache-2.0
# account.awk - accounting of readings received over MQTT (one CSV payload a
# line, as mosquitto_sub prints them). Duplicates (same ID) are dropped after
# checking they are identical. Prints, one per line:
#   readings N            unique readings
#   duplicates N
#   differing_duplicates N
#   out_of_order N        first arrivals whose sequence is below an earlier one
#   max_seq N
#   gaps N                sequence numbers base+1..max_seq covered by no reading
#                         (a reading covers MERGED_FROM..SEQ; -v base=N, default 0:
#                         what an earlier run already acknowledged)
#   overlaps N            numbers covered twice
#   merged N              readings flagged merged
#   turnstile SCP ENTRIES EXITS FIRST_ENTRIES_CUM FIRST_EXITS_CUM LAST_ENTRIES_CUM LAST_EXITS_CUM
BEGIN { FS = "," }
NF != 18 { bad++; next }
{
    split($12, id, ":"); seq = id[2] + 0
    if (seq in line) {
        dup++
        if (line[seq] != $0) diff++
        next
    }
    line[seq] = $0; n++
    if (seq < last_first) ooo++
    last_first = seq
    if (seq > max) max = seq
    from[seq] = $18 + 0
    scp = $3
    entries[scp] += $10; exits[scp] += $11
    if (!(scp in first_seq) || seq < first_seq[scp]) { first_seq[scp] = seq; fe[scp] = $15; fx[scp] = $16 }
    if (!(scp in last_seq) || seq > last_seq[scp]) { last_seq[scp] = seq; le[scp] = $15; lx[scp] = $16 }
    if ($17 ~ /(^|\|)merged(\||$)/) merged++
}
END {
    for (s in from) for (k = from[s]; k <= s + 0; k++) covered[k]++
    for (k = base + 1; k <= max; k++) { if (!(k in covered)) gaps++; else if (covered[k] > 1) overlaps++ }
    printf "readings %d\nduplicates %d\ndiffering_duplicates %d\nout_of_order %d\nmax_seq %d\n", n, dup, diff, ooo, max
    printf "gaps %d\noverlaps %d\nmerged %d\nmalformed %d\n", gaps, overlaps, merged, bad
    for (s in entries)
        printf "turnstile %s %d %d %s %s %s %s\n", s, entries[s], exits[s], fe[s], fx[s], le[s], lx[s]
}
