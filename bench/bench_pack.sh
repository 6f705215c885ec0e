#!/usr/bin/env bash
# What packing costs in quality: the neuron-major down projection is
# requantised, so dense perplexity of the packed model on held-out text is
# measured against the unpacked model's, for each down type pi-pack offers.
# Also the time pi-pack takes.  Perplexity is not a timing: it is exact for a
# given build and does not depend on the machine's load.
#
#   bench/bench_pack.sh [MODEL]      needs `make corpus`
set -euo pipefail
BUILD=${BUILD:-build}
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
TOKENS=${TOKENS:-20000}      # tokens of corpus/train.txt profiled for the statistics
HELD=${HELD:-40000}          # bytes of corpus/heldout.txt scored
TYPES=${TYPES:-"f32 q8_0 q5_1 q4_1"}
[ -f "$MODEL" ] || { echo "bench_pack: $MODEL absent (make model)" >&2; exit 1; }
[ -f corpus/train.txt ] || { echo "bench_pack: corpus absent (make corpus)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$BUILD/bin/pi-profile" -m "$MODEL" -q --tokens "$TOKENS" --stats-only --stats "$tmp/s.yaml" \
    corpus/train.txt
head -c "$HELD" corpus/heldout.txt >"$tmp/held.txt"
ppl() { "$BUILD/bin/pi-run" -m "$1" --perplexity "$tmp/held.txt" -c 512 --json -q |
        python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["perplexity"])'; }

base=$(ppl "$MODEL")
echo "pi-pack: dense perplexity over the first $HELD bytes of corpus/heldout.txt (ctx 512)"
printf '%-10s %10s %9s %12s %9s\n' down perplexity change "down bytes" "pack s"
printf '%-10s %10s %9s %12s %9s\n' unpacked "$base" - - -
for t in $TYPES; do
    s=$(date +%s.%N)
    "$BUILD/bin/pi-pack" -m "$MODEL" -q --stats "$tmp/s.yaml" --down-type "$t" -o "$tmp/p.gguf"
    secs=$(python3 -c "print($(date +%s.%N) - $s)")
    bytes=$("$BUILD/bin/pi-inspect" "$tmp/p.gguf" | awk '/blk\.0\.ffn_down_t/ { print $NF }')
    p=$(ppl "$tmp/p.gguf")
    printf '%-10s %10s %+8.2f%% %12s %9.1f\n' "$t" "$p" \
        "$(python3 -c "print(($p / $base - 1) * 100)")" "$bytes" "$secs"
done
