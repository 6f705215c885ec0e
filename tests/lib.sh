# Shared by the tool tests (tests/test_*.sh): a scratch directory removed on
# exit, pass/fail counting, and the closing line scripts/run-tests reads.
#   t NAME CMD...                  passes when CMD succeeds
#   fails_with NAME CODE PAT CMD...  passes when CMD exits CODE with at most two
#                                  stderr lines, one matching PAT
#   finish                         prints "N passed, N failed, N skipped"
#   words_text FILE LINES SEED     a text of LINES eight-word sentences drawn
#                                  from 24 words, for profiling synthetic models
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
