#!/usr/bin/env bash
# Mixture-of-experts decode on the CPU: for each MoE GGUF given, pi-run's
# generation tokens/s at each thread count, the weight bytes one generated
# token reads (everything but the experts, plus k of E experts per layer:
# pi reads only the chosen experts' rows) against the ideal (the active
# parameters times their bits per weight, which for whole experts is the
# same number) and the tokens/s the measured DRAM bandwidth would allow;
# beside llama.cpp's llama-bench on the same file when LLAMA_BENCH names a
# build (skipped when it cannot load the file, e.g. an architecture newer
# than the build).  Files come from bench/gen_model (random weights, real
# shapes).  Best of REPS runs, pi and llama.cpp interleaved.
#
#   bench/bench_moe.sh MODEL.gguf...
#   THREADS="1 2" TG=32 REPS=2 DRAM_GBS=31 LLAMA_BENCH=/path/to/llama-bench
set -euo pipefail
BUILD=${BUILD:-build}
THREADS=${THREADS:-"1 2"}
TG=${TG:-32}
REPS=${REPS:-2}
DRAM_GBS=${DRAM_GBS:-31}
[ $# -gt 0 ] || { echo "usage: bench/bench_moe.sh MODEL.gguf..." >&2; exit 2; }

bytes_per_token() { # model -> "total active ideal_params bpw"
    python3 - "$1" <<'PY'
import sys
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
arch = r.fields["general.architecture"].contents()
kv = lambda k: int(r.fields[f"{arch}.{k}"].contents())
E, k = kv("expert_count"), kv("expert_used_count")
total = active = params = 0
for t in r.tensors:
    n, b = int(t.n_elements), int(t.n_bytes)
    total += b
    if "_exps" in t.name:  # ffn_down_exps_t of a packed model too
        active += b * k // E
        params += n * k // E
    elif t.name != "token_embd.weight" or "output.weight" not in {x.name for x in r.tensors}:
        active += b  # the embedding is read one row a token unless it is the output too
        params += n
print(total, active, params, f"{8 * active / params:.3f}")
PY
}

best() { python3 -c "import sys; print(f'{max(map(float, sys.argv[1:])):.2f}')" "$@"; }

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores;" \
     "DRAM read taken as $DRAM_GBS GB/s; $TG generated tokens, best of $REPS"
printf '%-28s %8s %9s %10s %8s %8s %10s %10s\n' model threads "GB file" "MB/token" \
    "bits/w" ceiling "pi tok/s" "llama.cpp"
for m in "$@"; do
    read -r total active params bpw < <(bytes_per_token "$m")
    ceiling=$(python3 -c "print(f'{$DRAM_GBS * 1e9 / $active:.1f}')")
    for t in $THREADS; do
        pis=() lls=()
        for _ in $(seq "$REPS"); do
            pis+=("$("$BUILD/bin/pi-run" -m "$m" -t "$t" -p "The" -n "$TG" --temp 0 --ignore-eos \
                --json -q | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation_tokens_per_s"])')")
            if [ -n "${LLAMA_BENCH:-}" ]; then
                lls+=("$("$LLAMA_BENCH" -m "$m" -t "$t" -p 0 -n "$TG" -r 1 -o json 2>/dev/null |
                    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["avg_ts"])' \
                    2>/dev/null || echo 0)")
            fi
        done
        ll=-
        [ ${#lls[@]} -gt 0 ] && ll=$(best "${lls[@]}") && [ "$ll" = "0.00" ] && ll="no load"
        printf '%-28s %8s %9.2f %10.1f %8s %8s %10s %10s\n' "$(basename "$m")" "$t" \
            "$(python3 -c "print($total / 1e9)")" "$(python3 -c "print($active / 1e6)")" "$bpw" \
            "$ceiling" "$(best "${pis[@]}")" "$ll"
    done
done
