#!/bin/sh
# After a campaign: `cargo fuzz cmin` of each target's corpus (the inputs that keep its coverage),
# copied to fuzz/minimized/<target>/, which is committed and replayed by `cargo test` on stable
# Rust (tests/fuzz_replay.rs, tests/ir_fuzz.rs). Usage (repository root): fuzz/scripts/minimize.sh [TARGET…]
set -eu
targets=${*:-"onnx saved_model keras_h5 keras_zip tflite tfjs ir_graph"}
for t in $targets; do
    nice -n 19 cargo +nightly fuzz cmin --dev -s none "$t" "fuzz/corpus/$t" -- \
        -rss_limit_mb=4096 -timeout=10 > "fuzz/logs/$t.cmin.log" 2>&1
    rm -rf "fuzz/minimized/$t"
    mkdir -p "fuzz/minimized/$t"
    cp "fuzz/corpus/$t"/* "fuzz/minimized/$t/"
    echo "$t: $(ls "fuzz/minimized/$t" | wc -l) inputs, $(du -sk "fuzz/minimized/$t" | cut -f1) KB"
done
