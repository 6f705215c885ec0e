#!/usr/bin/env bash
# Tool test for examples/pipeline.sh and pi-run's sparse mode, on a synthetic
# model: the whole pipeline end to end (each stage's file valid, progress on
# stderr, the dense/sparse comparison on stdout, flags over the config file),
# then pi-run on the packed file it made: --json in sparse and dense mode,
# --sparsity-shift moving the active fraction, everything selected giving
# dense's greedy tokens and perplexity, perplexity in both modes, usage
# errors; and a pipeline that fails (missing text or model, a bad setting, a
# stage that fails) exiting non-zero with one clear message and no packed model.
set -u
BUILD=${BUILD:-build}
run=$BUILD/bin/pi-run
inspect=$BUILD/bin/pi-inspect
pipe=examples/pipeline.sh
. "$(dirname "$0")/lib.sh"
# jq-like: jget FILE EXPR, EXPR in Python over the JSON object j
jget() { python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print($2)" "$1"; }

# Untied: with the output tied to the embedding, this random model's greedy
# continuation repeats the prompt's last token whatever the FFN computes.
python3 tests/ref/synth.py --arch llama --type q4_1 --layers 2 --embd 64 --ff 256 --untied \
    --out "$tmp/m.gguf" >/dev/null || bad "synth.py writes the model"
words_text "$tmp/text.txt" 600 1
cat >"$tmp/cfg.yaml" <<'EOF'
# small settings for a synthetic model
tokens: 3000
n-predict: 32        # -n on the command line wins
threads: 2
prompt: "river hill sea"
profile: {every: 1, ctx: 128}
train: {rank: 8, epochs: 1, recall: 0.95}
pack: {down-type: q8_0}
EOF
w=$tmp/work
packed=$w/m.pi.gguf
args=(--config "$tmp/cfg.yaml" --model "$tmp/m.gguf" --text "$tmp/text.txt" --workdir "$w"
      --bin "$BUILD/bin")

t "--help exits 0 and shows usage" bash -c "'$pipe' --help | grep -q '^Usage: examples/pipeline.sh'"
fails_with "an unknown flag is a usage error" 2 "Try 'pipeline.sh --help'" "$pipe" --bogus
fails_with "a flag without its value is a usage error" 2 "needs a value" "$pipe" --tokens
fails_with "a bad -n is a usage error" 2 "n-predict" "$pipe" "${args[@]}" -n 0

# --- the whole pipeline ---------------------------------------------------

"$pipe" "${args[@]}" -n 16 >"$tmp/pipe.out" 2>"$tmp/pipe.err"
rc=$?
t "the pipeline exits 0" test $rc -eq 0
[ $rc -eq 0 ] || sed 's/^/    /' "$tmp/pipe.err"
t "a progress line per stage, each done with its seconds" bash -c \
    "[ \$(grep -cE '^\[[1-5]/5\] .* \.\.\. done in [0-9]+\.[0-9] s$' '$tmp/pipe.err') -eq 5 ]"
t "  ... the first names the tokens and the text" \
    grep -q "^\[1/5\] profiling 3000 tokens of $tmp/text.txt \.\.\. done" "$tmp/pipe.err"
t "stage 1 writes a trace and statistics of both layers" python3 - "$w" <<'PY'
import os, sys, yaml
w = sys.argv[1]
st = yaml.safe_load(open(f"{w}/profile.yaml"))
sys.exit(not (os.path.getsize(f"{w}/profile.trace") > 0 and len(st["layers"]) == 2))
PY
t "stage 2 writes predictors that pi-train-predictor --eval accepts" \
    bash -c "'$BUILD/bin/pi-train-predictor' -m '$tmp/m.gguf' -q --eval '$w/predictors.gguf' \
             '$w/profile.trace' | grep -q '^layer 1 recall_mass'"
t "  ... of rank 8, with a report" \
    bash -c "'$inspect' '$w/predictors.gguf' | grep -q 'pred.1.w1' && grep -q rank '$w/predictors.yaml'"
t "stage 3 writes a packed model with the pi section and predictors" \
    bash -c "'$inspect' '$packed' | grep -q '^pi packed model: from the model with fingerprint' &&
             '$inspect' '$packed' | grep -q 'predictors: trained for'"
t "stage 4 prints the prompt and its continuation" grep -q '^river hill sea.' "$tmp/pipe.out"
t "stage 4 reports the share of neurons computed" \
    grep -qE '^      16 tokens at [0-9.]+ tokens/s, [0-9.]+% of the FFN neurons computed$' "$tmp/pipe.err"
num='[0-9]+\.[0-9]+'
t "the comparison prints the original model's dense speed" \
    grep -qE "^  dense, original model +$num +100\.0%$" "$tmp/pipe.out"
t "  ... the packed model's dense speed" \
    grep -qE "^  dense, packed model +$num +100\.0%$" "$tmp/pipe.out"
t "  ... the sparse speed and active fraction" \
    grep -qE "^  sparse, packed model +$num +$num% \(layers $num% to $num%, shift 0\)$" "$tmp/pipe.out"
t "  ... the ratios" grep -qE "^  sparse/dense: ${num}x the packed model, ${num}x the original$" \
    "$tmp/pipe.out"
t "  ... and the agreement of greedy tokens" \
    grep -qE '^  greedy tokens equal to dense: the first [0-9]+ of 16$' "$tmp/pipe.out"
t "-n on the command line wins over the config file" \
    test "$(jget "$w/sparse.json" 'j["generated_tokens"], j["threads"], j["mode"]')" = "16 2 sparse"
t "the compared runs are dense, dense and sparse" \
    test "$(jget "$w/dense-original.json" 'j["mode"]')$(jget "$w/dense-packed.json" 'j["mode"]')" = densedense

# --- pi-run on the packed model -------------------------------------------

gen=(-p "river hill sea" -n 24 --temp 0 --ignore-eos -t 2 --json -q)
"$run" -m "$packed" "${gen[@]}" >"$tmp/sparse.json"
"$run" -m "$packed" "${gen[@]}" --dense >"$tmp/dense.json"
"$run" -m "$packed" "${gen[@]}" --sparsity-shift -100 >"$tmp/all.json"
"$run" -m "$packed" "${gen[@]}" --sparsity-shift -3 >"$tmp/low.json"
"$run" -m "$packed" "${gen[@]}" --sparsity-shift 3 >"$tmp/high.json"
n_layer=$("$inspect" --key llama.block_count "$tmp/m.gguf" | grep -oE '[0-9]+$')
t "a packed model with predictors runs sparse: 0 < active fraction <= 1, one per layer" \
    test "$(jget "$tmp/sparse.json" 'j["mode"], 0 < j["active_fraction"] <= 1,
        len(j["active_fraction_per_layer"]), all(0 <= a <= 1 for a in j["active_fraction_per_layer"]),
        0 <= j["predictor_time_share"] <= 1')" = "sparse True $n_layer True True"
t "--dense runs dense" test "$(jget "$tmp/dense.json" 'j["mode"], j["active_fraction"]')" = "dense 1.0"
t "--sparsity-shift 3 computes fewer neurons than -3" python3 - "$tmp" <<'PY'
import json, sys
lo, hi = (json.load(open(f"{sys.argv[1]}/{n}.json")) for n in ("low", "high"))
print(f"    active fraction: shift -3 {lo['active_fraction']}, shift 3 {hi['active_fraction']}")
sys.exit(not (hi["active_fraction"] < lo["active_fraction"] and lo["sparsity_shift"] == -3))
PY
t "--sparsity-shift -100 selects every neuron" \
    test "$(jget "$tmp/all.json" 'j["mode"], j["active_fraction"]')" = "sparse 1.0"
t "  ... and gives dense's greedy tokens" \
    test "$(jget "$tmp/all.json" 'j["token_ids"]')" = "$(jget "$tmp/dense.json" 'j["token_ids"]')"
t "  ... which depend on the FFN: with no neuron (shift 3) they differ" \
    test "$(jget "$tmp/high.json" 'j["token_ids"]')" != "$(jget "$tmp/dense.json" 'j["token_ids"]')"

ppl=(--perplexity "$tmp/text.txt" -c 128 -t 2 --json -q)
"$run" -m "$packed" "${ppl[@]}" >"$tmp/ppl-sparse.json"
"$run" -m "$packed" "${ppl[@]}" --dense >"$tmp/ppl-dense.json"
"$run" -m "$packed" "${ppl[@]}" --sparsity-shift -100 >"$tmp/ppl-all.json"
t "--perplexity on the packed model runs sparse" \
    test "$(jget "$tmp/ppl-sparse.json" 'j["mode"], j["perplexity"] > 1')" = "sparse True"
t "--perplexity --dense runs dense" \
    test "$(jget "$tmp/ppl-dense.json" 'j["mode"], j["perplexity"] > 1')" = "dense True"
# Every neuron selected computes dense's sums through the neuron-major down
# projection, in another order: the same to float rounding.
t "  ... and with every neuron selected, the same to 1e-5" python3 - "$tmp" <<'PY'
import json, sys
a, d = (json.load(open(f"{sys.argv[1]}/ppl-{n}.json"))["nll"] for n in ("all", "dense"))
print(f"    mean NLL: dense {d:.6f}, sparse with every neuron {a:.6f}")
sys.exit(not abs(a - d) <= 1e-5 * abs(d))
PY

fails_with "--dense with --sparsity-shift is a usage error" 2 "no effect with --dense" \
    "$run" -m "$packed" --dense --sparsity-shift 1 -p x -n 1
fails_with "--sparsity-shift on an unpacked model is refused" 1 "has no predictors" \
    "$run" -m "$tmp/m.gguf" --sparsity-shift 1 -p x -n 1

# --- a pipeline that fails ------------------------------------------------
# Each run in the same work directory: the packed model of the run above
# must not survive a failing one.

no_packed() { [ ! -e "$packed" ] && ! compgen -G "$w/*.tmp*" >/dev/null; }
fails_with "a missing text stops the pipeline" 1 "nope.txt: no such text" \
    "$pipe" "${args[@]}" --text "$tmp/nope.txt"
fails_with "a missing default corpus says make corpus" 1 "make corpus" \
    bash -c "cd '$tmp' && '$PWD/$pipe' --model m.gguf --bin '$PWD/$BUILD/bin' --workdir '$w'"
fails_with "a missing default model says make model" 1 "make model" \
    bash -c "cd '$tmp' && '$PWD/$pipe' --bin '$PWD/$BUILD/bin' --workdir '$w'"
fails_with "missing tools are named" 1 "pi tools" "$pipe" "${args[@]}" --bin "$tmp"
echo "bogus: 1" >"$tmp/bad.yaml"
fails_with "an unknown setting is refused" 1 "unknown setting 'bogus'" \
    "$pipe" --config "$tmp/bad.yaml"
echo "train: {output: x.gguf}" >"$tmp/bad.yaml"
fails_with "a tool option the pipeline sets itself is refused" 1 "train.output" \
    "$pipe" --config "$tmp/bad.yaml"
printf 'pack: {down-type: q4_k}\n' >"$tmp/bad.yaml"
cat "$tmp/cfg.yaml" "$tmp/bad.yaml" >"$tmp/badpack.yaml"
"$pipe" "${args[@]}" --config "$tmp/badpack.yaml" >"$tmp/fail.out" 2>"$tmp/fail.err"
rc=$?
t "a failing stage stops the pipeline with exit status 1" test $rc -eq 1
t "  ... naming the stage, the tool's error and its log" bash -c \
    "grep -q '^\[3/5\] packing m.gguf \.\.\. failed$' '$tmp/fail.err' &&
     grep -q '^pipeline.sh: stage 3: pi-pack failed (exit status 1):$' '$tmp/fail.err' &&
     grep -q 'unsupported quant type Q4_K' '$tmp/fail.err' &&
     grep -q '^pipeline.sh: its log: .*/pack.log$' '$tmp/fail.err'"
t "  ... leaving no packed model" no_packed
t "  ... and no comparison" test ! -s "$tmp/fail.out"
finish
