#!/usr/bin/env bash
# pi-profile's speed beside pi-run's batched prompt processing on the same
# model, thread count and batch size, measured in the same run and
# interleaved (pi-run, pi-profile, ...) so that machine noise hits both
# alike.  Best of REPS runs each.  The issue's bar: profiling at least half
# of the prompt speed.
#
#   bench/bench_profile.sh [MODEL]      needs `make corpus`
set -euo pipefail
BUILD=${BUILD:-build}
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
TOKENS=${TOKENS:-4096}  # text tokens profiled
CTX=${CTX:-512}         # profiling window; pi-run reads a prompt of CTX tokens
REPS=${REPS:-3}
TEXT=${TEXT:-corpus/train.txt}
[ -f "$MODEL" ] || { echo "bench_profile: $MODEL absent (make model)" >&2; exit 1; }
[ -f "$TEXT" ] || { echo "bench_profile: $TEXT absent (make corpus)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# pi-run's prompt: the first CTX - 1 tokens of the same text (BOS makes CTX),
# so both see the same attention lengths: a window of CTX from empty.
head -c 200000 "$TEXT" >"$tmp/head.txt"
prompt=$(python3 - "$tmp/head.txt" "$CTX" <<'PY'
import sys
words = open(sys.argv[1]).read().split()
print(" ".join(words[: int(int(sys.argv[2]) * 0.7)]), end="")
PY
)

run_once() { # threads -> prompt tok/s
    "$BUILD/bin/pi-run" -m "$MODEL" -t "$1" -c $((CTX * 2)) -p "$prompt" -n 1 --temp 0 --json --quiet |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["prompt_tokens_per_s"], d["prompt_tokens"])'
}
profile_once() { # threads every -> tok/s
    "$BUILD/bin/pi-profile" -m "$MODEL" -t "$1" --ctx "$CTX" --tokens "$TOKENS" --every "$2" \
        -o "$tmp/p.trace" --stats "$tmp/p.yaml" "$TEXT" 2>&1 | sed -n 's/.*(\([0-9.]*\) tok\/s).*/\1/p'
}
best() { sort -g | tail -n1; }

echo "pi-profile vs pi-run prompt processing, $(basename "$MODEL"), best of $REPS"
printf '%-8s %-22s %-22s %-22s %s\n' threads "pi-run prompt tok/s" "profile --every 2" \
    "profile --every 1" "ratio (every 2 / 1)"
for t in 1 2; do
    : >"$tmp/run" >"$tmp/p2" >"$tmp/p1"
    for _ in $(seq "$REPS"); do
        run_once "$t" | cut -d' ' -f1 >>"$tmp/run"
        profile_once "$t" 2 >>"$tmp/p2"
        profile_once "$t" 1 >>"$tmp/p1"
    done
    r=$(best <"$tmp/run") a=$(best <"$tmp/p2") b=$(best <"$tmp/p1")
    printf '%-8s %-22s %-22s %-22s %.2f / %.2f\n' "$t" "$r" "$a" "$b" \
        "$(awk "BEGIN{print $a / $r}")" "$(awk "BEGIN{print $b / $r}")"
done
echo "(prompt of $(run_once 1 | cut -d' ' -f2) tokens; profiling windows of $CTX, $TOKENS tokens)"
