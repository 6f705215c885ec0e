#!/usr/bin/env bash
# Prompt processing and generation speed of pi-run on a model, with 1 and 2
# threads, beside llama.cpp's llama-bench on the same GGUF and thread count,
# measured in the same run and interleaved (pi, llama.cpp, pi, ...) so that
# machine noise hits both alike.  Reports the best of REPS runs each.
#
#   bench/bench_run.sh [MODEL]
#   LLAMA_BENCH=/path/to/llama-bench        native build: generation speed
#   LLAMA_BENCH_NOAMX=/path/to/llama-bench  build without AMX: prompt speed
#                                           (see bench/RESULTS.md for why)
# Either may be absent; those columns are then skipped.
set -euo pipefail
BUILD=${BUILD:-build}
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
PP=${PP:-128}   # prompt tokens
TG=${TG:-128}   # generated tokens
REPS=${REPS:-3}
[ -f "$MODEL" ] || { echo "bench_run: $MODEL absent (make model)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A prompt of exactly PP tokens: the word " the" repeated is one token each
# in every byte-level BPE vocabulary pi ships tests for.
prompt=$(python3 -c "print('The' + ' the' * ($PP - 1), end='')")

pi_once() { # threads -> "pp_tps tg_tps"
    local pp tg
    pp=$("$BUILD/bin/pi-run" -m "$MODEL" -t "$1" -p "$prompt" -n 1 -b "$PP" --temp 0 --json --quiet |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["prompt_tokens_per_s"])')
    tg=$("$BUILD/bin/pi-run" -m "$MODEL" -t "$1" -p "The" -n "$TG" --temp 0 --ignore-eos --json --quiet |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["generation_tokens_per_s"])')
    echo "$pp $tg"
}

llama_once() { # binary threads -> "pp_tps tg_tps"
    "$1" -m "$MODEL" -t "$2" -p "$PP" -n "$TG" -r 1 -o json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)
pp = [r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0]
tg = [r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0]
print(pp[0] if pp else 0, tg[0] if tg else 0)'
}

best() { python3 -c "import sys; print(f'{max(map(float, sys.argv[1:])):.1f}')" "$@"; }

echo "model: $MODEL ($(stat -c %s "$MODEL") bytes); prompt $PP tokens, generation $TG tokens; best of $REPS"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
printf '%-8s %-30s %12s %12s\n' threads engine "pp tok/s" "tg tok/s"
for t in 1 2; do
    declare -a pi_pp=() pi_tg=() ln_pp=() ln_tg=() la_pp=() la_tg=()
    for r in $(seq "$REPS"); do
        read -r a b < <(pi_once "$t"); pi_pp+=("$a"); pi_tg+=("$b")
        if [ -n "${LLAMA_BENCH_NOAMX:-}" ]; then
            read -r a b < <(llama_once "$LLAMA_BENCH_NOAMX" "$t"); ln_pp+=("$a"); ln_tg+=("$b")
        fi
        if [ -n "${LLAMA_BENCH:-}" ]; then
            read -r a b < <(llama_once "$LLAMA_BENCH" "$t"); la_pp+=("$a"); la_tg+=("$b")
        fi
    done
    p=$(best "${pi_pp[@]}"); g=$(best "${pi_tg[@]}")
    printf '%-8s %-30s %12s %12s\n' "$t" "pi" "$p" "$g"
    if [ ${#ln_pp[@]} -gt 0 ]; then
        lp=$(best "${ln_pp[@]}"); lg=$(best "${ln_tg[@]}")
        printf '%-8s %-30s %12s %12s\n' "$t" "llama.cpp (no AMX)" "$lp" "$lg"
        printf '%-8s %-30s %12s %12s\n' "$t" "ratio pi / llama.cpp (no AMX)" \
            "$(python3 -c "print(f'{$p/$lp:.2f}')")" "$(python3 -c "print(f'{$g/$lg:.2f}')")"
    fi
    if [ ${#la_pp[@]} -gt 0 ]; then
        lg=$(best "${la_tg[@]}")
        printf '%-8s %-30s %12s %12s\n' "$t" "llama.cpp (native, AMX)" "(invalid)" "$lg"
        printf '%-8s %-30s %12s %12s\n' "$t" "ratio pi / llama.cpp (AMX)" "" \
            "$(python3 -c "print(f'{$g/$lg:.2f}')")"
    fi
done
