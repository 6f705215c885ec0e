#!/usr/bin/env bash
# pi-run on the CUDA GPU beside the CPU, in the same run: prompt and
# generation tokens/s of each model given (default: the default model and a
# random-weight 7B Llama-shaped Q4_0 model written by bench/gen_model), dense
# and, for models packed with predictors, sparse.  Then the product kernels'
# achieved bandwidth against a device-to-device copy (test_cuda_matvec with
# PI_CUDA_BENCH=1).  Skips, saying why, when no GPU can be used.
#
#   bench/bench_gpu.sh [MODEL...]
#   GEN7B=0 skips writing the 7B model (3.8 GB in /tmp, or $GEN_DIR)
set -euo pipefail
BUILD=${BUILD:-build}
PP=${PP:-512}   # prompt tokens
TG=${TG:-128}   # generated tokens
REPS=${REPS:-3}
CPU_THREADS=${CPU_THREADS:-$(nproc)}
run=$BUILD/bin/pi-run

status=$("$run" -m models/SmolLM2-135M-Instruct.Q4_1.gguf --gpu --dry-run -q 2>/dev/null |
    sed -n 's/^device: //p' || true)
if [ "$status" != "CUDA ready" ]; then
    echo "bench_gpu: skipped: ${status:-no pi-run or no default model (make, make model)}"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
    [ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] && models+=(models/SmolLM2-135M-Instruct.Q4_1.gguf)
    [ -f pi-work/SmolLM2-135M-Instruct.Q4_1.pi.gguf ] && models+=(pi-work/SmolLM2-135M-Instruct.Q4_1.pi.gguf)
    if [ "${GEN7B:-1}" = 1 ]; then
        gen=${GEN_DIR:-/tmp}/llama-7b.q4_0.gguf
        [ -f "$gen" ] || "$BUILD/bench/gen_model" --preset llama-7b --type q4_0 -o "$gen"
        models+=("$gen")
    fi
fi

prompt=$(python3 -c "print('The' + ' the' * ($PP - 1), end='')")
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

once() { # model device-flags... -> "pp_tps tg_tps"
    local m=$1 pp tg; shift
    pp=$("$run" -m "$m" "$@" -c $((PP + TG + 8)) -p "$prompt" -n 1 -b 64 --temp 0 --json -q |
        field prompt_tokens_per_s)
    tg=$("$run" -m "$m" "$@" -c $((PP + TG + 8)) -p "The" -n "$TG" --temp 0 --ignore-eos --json -q |
        field generation_tokens_per_s)
    echo "$pp $tg"
}
best() { python3 -c "import sys; print(f'{max(map(float, sys.argv[1:])):.1f}')" "$@"; }

nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null |
    sed 's/^/gpu: /' || true
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $CPU_THREADS threads"
echo "prompt $PP tokens (batch 64), generation $TG tokens; best of $REPS"
printf '%-44s %-7s %-6s %10s %10s\n' model mode device "pp tok/s" "tg tok/s"
for m in "${models[@]}"; do
    modes=(dense)
    "$BUILD/bin/pi-inspect" "$m" 2>/dev/null | grep -q "pi.predictor.version" && modes+=(sparse)
    for mode in "${modes[@]}"; do
        flags=()
        [ "$mode" = dense ] && flags+=(--dense)
        # the CPU only for models it reads in reasonable time
        devs=(gpu)
        [ "$(stat -c %s "$m")" -lt 2000000000 ] && devs+=(cpu)
        for dev in "${devs[@]}"; do
            pps=() tgs=()
            for _ in $(seq "$REPS"); do
                if [ "$dev" = gpu ]; then
                    read -r a b < <(once "$m" --gpu "${flags[@]}")
                else
                    read -r a b < <(once "$m" -t "$CPU_THREADS" "${flags[@]}")
                fi
                pps+=("$a"); tgs+=("$b")
            done
            printf '%-44s %-7s %-6s %10s %10s\n' "$(basename "$m")" "$mode" "$dev" \
                "$(best "${pps[@]}")" "$(best "${tgs[@]}")"
        done
    done
done

echo
echo "kernels (test_cuda_matvec, PI_CUDA_BENCH=1):"
PI_CUDA_BENCH=1 "$BUILD/tests/test_cuda_matvec" 2>&1 | grep -iE "GB/s|copy" || true
