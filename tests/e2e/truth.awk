# SPDX-License-Identifier: Apache-2.0
# truth.awk - the people that really passed each turnstile while the test ran,
# computed from the MTA file and the simulator's registers, without the agent.
#
#   zcat MTA.csv.gz | awk -v t0=MS -v t1=MS -v lpoll=N -v lwin=N [-v rate=60] \
#       -f truth.awk KEYS -
#
# KEYS: one line per turnstile "CA UNIT SCP E0 X0 E1 X1": the registers the
# simulator served (its `get`) at simulated time t0 (UTC epoch ms, its `time`)
# and at t1, both while paused. The MTA rows give the rest of what it served in
# between: the replay (docs/simulator.md, sim/replay.c) takes the last row at
# each time as the value at that time, counts a register down when most of its
# moves in the whole file are down, and moves linearly between the values a
# (at ta) and b (at the next time tb), up or down alike, when the move goes
# the register's way and |b - a| <= rate * minutes; else it keeps a and steps
# to b at tb. So the values served from t0 to t1 are E0, the values with
# t0 < t <= t1, E1; each consecutive pair lies in one replay segment, and what
# it is worth follows from docs/counters.md for an agent polling densely
# (every poll can count at most lpoll people, its max_rate_per_min times the
# poll interval; lwin people in the counter's window, one minute):
#
#   linear move              |y - x|      (ordinary counting, rules 1-4)
#   step up (up register)    0            (an implausible jump: glitch, then
#                                          rebased; its people are unknowable)
#   step down to y <= lwin,  y            (a reset to 0, rule 9)
#     by more than lpoll
#   other step down          0            (glitch, then rebased)
#   down register, step down x - y        (a counter running backwards; the
#                             if <= lpoll  direction is voted, rules 2, 3, 7)
#   down register, step up   0
#
# A register counting down is published only once its direction is voted:
# with fewer than 3 down moves it is held (0 published, rule 7); a linear fall
# of d people counts as up to d moves (at dense polling each is one poll).
# Prints "CA UNIT SCP ENTRIES EXITS NOTES", NOTES naming every step that was
# not ordinary counting (e.g. entries:reset+306@06-01T13:00), or "-".
BEGIN { if (rate == "") rate = 60; if (lpoll == "") lpoll = 600; if (lwin == "") lwin = lpoll }

function days(y, m, d) {   # days since 1970-01-01 of a civil date
    y -= (m <= 2); era = int(y / 400); yoe = y - era * 400
    doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
    return era * 146097 + yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy - 719468
}
function ny_ms(date, time,   a, b) {   # MM/DD/YYYY HH:MM:SS New York (EDT all week) -> UTC ms
    split(date, a, "/"); split(time, b, ":")
    return ((days(a[3] + 0, a[1] + 0, a[2] + 0) * 86400 + b[1] * 3600 + b[2] * 60 + b[3] + 4 * 3600) * 1000)
}
function worth(k, r, x, y, tx, dir,   i, ta, tb, va, vb, linear, dd) {
    # the segment that holds (tx, ty]: the last reading at or before tx and the next
    if (y == x) return 0
    linear = 0
    for (i = 1; i < n[k]; i++)
        if (T[k, i] <= tx && T[k, i + 1] > tx) {
            ta = T[k, i]; va = V[k, r, i]; tb = T[k, i + 1]; vb = V[k, r, i + 1]
            dd = dir == "down" ? va - vb : vb - va
            linear = (dd >= 0 && dd <= rate * (tb - ta) / 60000)
        }
    if (linear && y < x) note(k, r, "down-" (x - y))
    if (linear) return y > x ? y - x : x - y
    if (dir == "down") {
        if (y < x && x - y <= lpoll) { note(k, r, "down-" (x - y)); return x - y }
        note(k, r, "glitch" (y > x ? "+" : "-") (y > x ? y - x : x - y) "(0)"); return 0
    }
    if (y > x) { note(k, r, "jump+" (y - x) "(0)"); return 0 }
    if (y <= lwin && x - y > lpoll) { note(k, r, "reset+" y); return y }
    note(k, r, "drop-" (x - y) "(0)"); return 0
}
function note(k, r, s) { notes[k] = notes[k] (notes[k] == "" ? "" : ",") (r == 1 ? "entries:" : "exits:") s }

FILENAME != "-" && NF >= 7 {   # KEYS
    k = $1 SUBSEP $2 SUBSEP $3; want[k] = 1; order[++nk] = k; name[k] = $1 " " $2 " " $3
    s0[k, 1] = $4; s0[k, 2] = $5; s1[k, 1] = $6; s1[k, 2] = $7
    next
}
FILENAME == "-" {
    FS = ","
    if (FNR == 1) { $0 = $0; next }
    $0 = $0
    k = $2 SUBSEP $3 SUBSEP $4
    if (!(k in want)) next
    i = ++n[k]; T[k, i] = ny_ms($8, $9); V[k, 1, i] = $11 + 0; V[k, 2, i] = $12 + 0
    # keep each turnstile's readings sorted by time (stable, as the simulator does)
    while (i > 1 && T[k, i - 1] > T[k, i]) {
        t = T[k, i]; T[k, i] = T[k, i - 1]; T[k, i - 1] = t
        for (r = 1; r <= 2; r++) { v = V[k, r, i]; V[k, r, i] = V[k, r, i - 1]; V[k, r, i - 1] = v }
        i--
    }
    # the value at a time is its last row: a later row at the same time replaces it
    if (i > 1 && T[k, i - 1] == T[k, i]) {
        for (r = 1; r <= 2; r++) V[k, r, i - 1] = V[k, r, i]
        for (j = i; j < n[k]; j++) {
            T[k, j] = T[k, j + 1]
            for (r = 1; r <= 2; r++) V[k, r, j] = V[k, r, j + 1]
        }
        n[k]--
    }
}
END {
    for (j = 1; j <= nk; j++) {
        k = order[j]
        if (n[k] == 0) { print name[k], "not in the MTA file" > "/dev/stderr"; bad = 1; continue }
        for (r = 1; r <= 2; r++) {
            up = 0; down = 0
            for (i = 2; i <= n[k]; i++) { d = V[k, r, i] - V[k, r, i - 1]; if (d > 0) up++; else if (d < 0) down++ }
            dir = down > up ? "down" : "up"
            if (dir == "down") note(k, r, "counts-down")
            x = s0[k, r]; tx = t0; sum = 0; votes = 0
            for (i = 1; i <= n[k]; i++) {
                if (T[k, i] <= t0 || T[k, i] > t1) continue
                y = V[k, r, i]
                if (y < x) votes += x - y
                sum += worth(k, r, x, y, tx, dir)
                x = y; tx = T[k, i]
            }
            if (s1[k, r] < x) votes += x - s1[k, r]
            sum += worth(k, r, x, s1[k, r], tx, dir)
            # auto direction: a register that counts down is held until its vote
            # leads by 3 (rules 2, 3, 7): with fewer down moves nothing is published yet
            if (dir == "down" && votes < 3) { note(k, r, "held(" sum ",vote-open)"); sum = 0 }
            tot[r] = sum
        }
        print name[k], tot[1], tot[2], (notes[k] == "" ? "-" : notes[k])
    }
    exit bad
}
