#!/usr/bin/env bash
# Soak test: a long training run whose resident memory must stay flat.
#   tests/robust/soak.sh [MINUTES] [path/to/reclf]        (default 30 minutes; make soak)
#   env: MODEL (reclf), BATCH (16), DATA (synth), EVERY (sampling period, 5 s), CKPT_EVERY (50),
#        OUT (a temp folder)
# Samples VmRSS of the training process every EVERY seconds into OUT/rss.csv (seconds, step,
# rss_kib), stops the run with SIGTERM at the end (which also checks the clean stop), and compares
# the median RSS of the second quarter of the run (after warm-up: arena, thread pools, page cache
# of the first checkpoint) with that of the last quarter. Fails when it grew by more than 2% or
# 8 MiB, whichever is larger; prints the least-squares slope in KiB/min as well.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MINUTES=${1:-30}
BIN=$(realpath "${2:-$ROOT/bin/reclf}")
MODEL=${MODEL:-reclf}
BATCH=${BATCH:-16}
DATA=${DATA:-synth}
EVERY=${EVERY:-5}
CKPT_EVERY=${CKPT_EVERY:-50}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
OUT=${OUT:-$(mktemp -d /tmp/reclf_soak.XXXXXX)}
mkdir -p "$OUT"
echo "soak: $MODEL, batch $BATCH, data $DATA, $MINUTES min, RSS every $EVERY s -> $OUT/rss.csv"
"$BIN" train --model "$MODEL" --batch "$BATCH" --steps 100000000 --data "$DATA" --ckpt-every "$CKPT_EVERY" \
    --log-every 10 --quiet --out "$OUT/run" >"$OUT/train.log" 2>&1 &
pid=$!
echo "seconds,step,rss_kib" >"$OUT/rss.csv"
t0=$(date +%s)
end=$((t0 + MINUTES * 60))
while kill -0 $pid 2>/dev/null && [ "$(date +%s)" -lt $end ]; do
    rss=$(awk '/^VmRSS:/ { print $2 }' /proc/$pid/status 2>/dev/null)
    step=$(tail -n1 "$OUT/run/metrics.jsonl" 2>/dev/null | grep -o '"step": [0-9]*' | tr -dc 0-9)
    [ -n "$rss" ] && echo "$(($(date +%s) - t0)),${step:-0},$rss" >>"$OUT/rss.csv"
    sleep "$EVERY"
done
if ! kill -0 $pid 2>/dev/null; then
    wait $pid
    echo "soak: FAIL: the training run ended early (exit $?):"
    tail -n 5 "$OUT/train.log"
    exit 1
fi
kill -TERM $pid
wait $pid
rc=$?
grep -q "stopped by signal 15" "$OUT/train.log" && [ $rc -eq 0 ] || { echo "soak: FAIL: no clean stop on SIGTERM (exit $rc)"; tail -n 5 "$OUT/train.log"; exit 1; }
awk -F, '
    BEGIN { n = 0 }
    NR > 1 { t[n] = $1; s[n] = $2; r[n] = $3; n++ }
    function median(a, b,   k, m, v, i, j, x) {   # median of r[a..b)
        m = 0; for (k = a; k < b; k++) v[m++] = r[k]
        for (i = 1; i < m; i++) { x = v[i]; for (j = i - 1; j >= 0 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        return m % 2 ? v[(m - 1) / 2] : (v[m / 2 - 1] + v[m / 2]) / 2
    }
    END {
        if (n < 8) { print "soak: FAIL: only " n " samples"; exit 1 }
        q = int(n / 4); early = median(q, 2 * q); late = median(n - q, n)
        mx = 0; for (k = 0; k < n; k++) if (r[k] > mx) mx = r[k]
        # least-squares slope over the second half, KiB per minute
        a = int(n / 2); sx = sy = sxx = sxy = 0; m = n - a
        for (k = a; k < n; k++) { sx += t[k]; sy += r[k]; sxx += t[k] * t[k]; sxy += t[k] * r[k] }
        slope = (m * sxy - sx * sy) / (m * sxx - sx * sx) * 60
        printf "soak: %d samples over %d s, steps %d..%d\n", n, t[n - 1], s[0], s[n - 1]
        printf "soak: RSS first %.1f MiB, 2nd-quarter median %.1f MiB, last-quarter median %.1f MiB, max %.1f MiB\n",
               r[0] / 1024, early / 1024, late / 1024, mx / 1024
        printf "soak: growth %+.2f MiB (%+.2f%%), slope over the second half %+.1f KiB/min\n",
               (late - early) / 1024, 100 * (late - early) / early, slope
        allowed = early * 0.02; if (allowed < 8192) allowed = 8192
        if (late - early > allowed) { printf "soak: FAIL: resident memory grew by more than %.1f MiB\n", allowed / 1024; exit 1 }
        print "soak: OK: resident memory is flat"
    }' "$OUT/rss.csv"
