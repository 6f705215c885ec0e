# Shared by the tool tests (tests/test_*.sh): a scratch directory removed on
# exit, pass/fail counting, and the closing line scripts/run-tests reads.
#   t NAME CMD...                  passes when CMD succeeds
#   fails_with NAME CODE PAT CMD...  passes when CMD exits CODE with at most two
#                                  stderr lines, one matching PAT
#   finish                         prints "N passed, N failed, N skipped"
#   words_text FILE LINES SEED     a text of LINES eight-word sentences drawn
#                                  from 24 words, for profiling synthetic models
#   packed_synth TOKENS EPOCHS [PI-PACK FLAGS...]
#                                  a 2-layer untied llama (q4_1) in $tmp/m.gguf
#                                  profiled over TOKENS tokens of $tmp/text.txt
#                                  (words_text 400 3), trained (rank 8) and
#                                  packed into $tmp/pk.gguf; fails if any step does
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
t() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
fails_with() {
    local name=$1 code=$2 pat=$3 rc; shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    if [ $rc -eq "$code" ] && grep -q -- "$pat" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -le 2 ]; then
        ok "$name"
    else
        bad "$name (exit $rc: $(head -c 300 "$tmp/err"))"
    fi
}
finish() {
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
}

words_text() {
    python3 - "$@" <<'PY'
import random, sys
words = ("river hill sea town road field house light stone water wind bread king "
         "garden letter window morning evening summer winter horse friend story").split()
rng = random.Random(int(sys.argv[3]))
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        f.write(" ".join(rng.choice(words) for _ in range(8)) + ".\n")
PY
}

packed_synth() {
    local tokens=$1 epochs=$2; shift 2
    python3 tests/ref/synth.py --arch llama --type q4_1 --layers 2 --embd 64 --ff 256 --untied \
        --out "$tmp/m.gguf" >/dev/null &&
    words_text "$tmp/text.txt" 400 3 &&
    "$BUILD/bin/pi-profile" -m "$tmp/m.gguf" -q --every 1 --ctx 128 --tokens "$tokens" \
        "$tmp/text.txt" -o "$tmp/t.trace" --stats "$tmp/s.yaml" &&
    "$BUILD/bin/pi-train-predictor" -m "$tmp/m.gguf" -q --rank 8 --epochs "$epochs" \
        "$tmp/t.trace" -o "$tmp/p.gguf" &&
    "$BUILD/bin/pi-pack" -m "$tmp/m.gguf" -q --stats "$tmp/s.yaml" --predictors "$tmp/p.gguf" \
        "$@" -o "$tmp/pk.gguf"
}
