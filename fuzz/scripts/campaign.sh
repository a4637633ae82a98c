#!/bin/sh
# A campaign: each target in turn for SECONDS seconds of wall time (default 600), niced, one
# fuzz process at a time, in fork mode so that a crash, timeout or OOM is recorded under
# fuzz/artifacts/<target>/ and the run goes on. Usage (from the repository root, after
# `python3 fuzz/scripts/seed.py`): fuzz/scripts/campaign.sh [SECONDS] [TARGET…]
set -u
secs=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-"onnx saved_model keras_h5 keras_zip tflite tfjs ir_graph"}
root=$(pwd)
mkdir -p fuzz/logs
for t in $targets; do
    # max_len: the largest seed, so that mutations may grow a small input up to a real model.
    len=$(ls -S -l "fuzz/corpus/$t" | awk 'NR == 2 { print $5 }')
    # ir_graph's bytes are choices, not a format: it has no dictionary.
    dict=""
    [ -e "fuzz/dict/$t.dict" ] && dict="-dict=$root/fuzz/dict/$t.dict"
    /usr/bin/time -f "cpu_user=%U cpu_sys=%S wall=%e max_rss_kb=%M" -o "fuzz/logs/$t.time" \
        nice -n 19 cargo +nightly fuzz run --dev -s none "$t" "fuzz/corpus/$t" -- \
        $dict -max_total_time="$secs" -max_len="${len:-4096}" \
        -rss_limit_mb=4096 -timeout=10 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
        -ignore_ooms=1 -print_final_stats=1 > "fuzz/logs/$t.log" 2>&1
    echo "$t: $(cat "fuzz/logs/$t.time")"
done
