#!/usr/bin/env bash
# Tool tests for pi-profile: usage errors, the trace and statistics it writes
# (determinism across thread counts, --tokens/--every/--layers, concatenation,
# stdin, --config), and bad input: an empty corpus, a trace from another
# model, a truncated trace, an unwritable output, an interruption.  Runs on
# synthetic models the test writes.
set -u
BUILD=${BUILD:-build}
bin=$BUILD/bin/pi-profile
info=$BUILD/tests/tool_traceinfo
. "$(dirname "$0")/lib.sh"
field() { "$info" "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
no_leftovers() { [ -z "$(ls "$tmp/out.d" 2>/dev/null)" ]; }

python3 tests/ref/synth.py --arch llama --type q4_0 --layers 3 --out "$tmp/m.gguf" >/dev/null &&
python3 tests/ref/synth.py --arch qwen2 --type q8_0 --layers 2 --out "$tmp/other.gguf" >/dev/null ||
    bad "synth.py writes models"
for i in $(seq 1 60); do
    echo "The capital of France is Paris. Line $i tells of rivers, hills and the sea."
done >"$tmp/text.txt"
m=(-m "$tmp/m.gguf" -q)

t "--help exits 0 and shows usage" bash -c "'$bin' --help | grep -q '^Usage: pi-profile'"
fails_with "an unknown flag is a usage error" 2 "Try 'pi-profile --help'" "$bin" --bogus
fails_with "a bad number is a usage error" 2 "every" "$bin" --every 0 "$tmp/text.txt"
fails_with "a bad layer list is a usage error" 2 "layers" "$bin" "${m[@]}" --layers 1-x \
    -o "$tmp/x.trace" "$tmp/text.txt"
fails_with "a layer past the last is refused" 2 "layers 0 to 2" "$bin" "${m[@]}" --layers 3 \
    -o "$tmp/x.trace" "$tmp/text.txt"
fails_with "a missing model names the file" 1 "^pi-profile: $tmp/none.gguf: No such file" \
    "$bin" -m "$tmp/none.gguf" -o "$tmp/x.trace" "$tmp/text.txt"
fails_with "a missing text names the file" 1 "^pi-profile: $tmp/none.txt: No such file" \
    "$bin" "${m[@]}" -o "$tmp/x.trace" "$tmp/none.txt"

# A trace and statistics of the whole text.
"$bin" "${m[@]}" -t 1 --every 1 --ctx 64 "$tmp/text.txt" -o "$tmp/a.trace" --stats "$tmp/a.yaml"
t "profiling exits 0 and writes the trace" test -s "$tmp/a.trace"
n=$(field "$tmp/a.trace" records)
t "every token is recorded with --every 1 ($n)" test "${n:-0}" -gt 500
t "the trace records all layers" test "$(field "$tmp/a.trace" layers)" = 3
t "the statistics are YAML for this model" \
    grep -q "^format: pi-actstats" "$tmp/a.yaml"
t "the statistics count the same tokens" grep -q "^tokens: $n\$" "$tmp/a.yaml"
"$bin" "${m[@]}" -t 2 --every 1 --ctx 64 "$tmp/text.txt" -o "$tmp/a2.trace"
t "the trace does not depend on the thread count" cmp -s "$tmp/a.trace" "$tmp/a2.trace"
t "files written are not private" test "$(stat -c %a "$tmp/a.trace")" = "$(umask -S >/dev/null; printf '%o' $((0666 & ~$(umask))))"

"$bin" "${m[@]}" --tokens 100 --every 1 "$tmp/text.txt" -o "$tmp/b.trace"
t "--tokens stops after N tokens" test "$(field "$tmp/b.trace" records)" = 100
"$bin" "${m[@]}" --tokens 400 --every 4 "$tmp/text.txt" -o "$tmp/c.trace"
t "--every 4 records one token in four" test "$(field "$tmp/c.trace" records)" = 100
"$bin" "${m[@]}" --tokens 400 --every 4 --seed 7 "$tmp/text.txt" -o "$tmp/c7.trace"
t "--seed changes which tokens are recorded" \
    bash -c "! cmp -s <('$info' '$tmp/c.trace' | head -4) <('$info' '$tmp/c7.trace' | head -4)"
"$bin" "${m[@]}" --tokens 50 --layers 1-2 "$tmp/text.txt" -o "$tmp/d.trace"
t "--layers records the layers asked for" \
    test "$(field "$tmp/d.trace" layers)/$(field "$tmp/d.trace" first_layer)" = 2/1
"$bin" "${m[@]}" --tokens 100 --every 1 -o - <"$tmp/text.txt" >"$tmp/e.trace"
t "text from stdin, trace to stdout" cmp -s "$tmp/b.trace" "$tmp/e.trace"
printf 'tokens: 100\nevery: 1\nquiet: true\nmodel: %s\n' "$tmp/m.gguf" >"$tmp/cfg.yaml"
"$bin" --config "$tmp/cfg.yaml" "$tmp/text.txt" -o "$tmp/f.trace"
t "--config gives options" cmp -s "$tmp/b.trace" "$tmp/f.trace"
"$bin" --config "$tmp/cfg.yaml" --tokens 60 "$tmp/text.txt" -o "$tmp/g.trace"
t "a flag overrides the config file" test "$(field "$tmp/g.trace" records)" = 60

cat "$tmp/b.trace" "$tmp/f.trace" >"$tmp/cat.trace"
t "concatenated traces read as one" \
    test "$(field "$tmp/cat.trace" parts)/$(field "$tmp/cat.trace" records)" = 2/200
"$bin" -m "$tmp/other.gguf" -q --tokens 20 "$tmp/text.txt" -o "$tmp/o.trace"
cat "$tmp/b.trace" "$tmp/o.trace" >"$tmp/mixed.trace"
fails_with "a part from another model is refused" 1 "another model" "$info" "$tmp/mixed.trace"
size=$(stat -c %s "$tmp/b.trace")
head -c $((size - 7)) "$tmp/b.trace" >"$tmp/trunc.trace"
fails_with "a truncated trace is refused" 1 "truncated" "$info" "$tmp/trunc.trace"
head -c $((size / 2)) "$tmp/b.trace" >"$tmp/half.trace"
fails_with "half a trace is refused" 1 "trace" "$info" "$tmp/half.trace"

"$bin" "${m[@]}" --stats-only --tokens 100 "$tmp/text.txt" >"$tmp/s.yaml"
t "--stats-only writes the statistics to stdout" grep -q "^tokens: 100\$" "$tmp/s.yaml"
fails_with "--stats-only with -o is a usage error" 2 "stats-only" \
    "$bin" "${m[@]}" --stats-only -o "$tmp/x.trace" "$tmp/text.txt"

mkdir -p "$tmp/out.d"
: >"$tmp/empty.txt"
fails_with "an empty corpus is an error" 1 "no text" \
    "$bin" "${m[@]}" "$tmp/empty.txt" -o "$tmp/out.d/x.trace" --stats "$tmp/out.d/x.yaml"
t "an empty corpus leaves no file" no_leftovers
fails_with "an unwritable output names it" 1 "$tmp/nodir/x.trace" \
    "$bin" "${m[@]}" "$tmp/text.txt" -o "$tmp/nodir/x.trace"
fails_with "an unwritable statistics file names it" 1 "$tmp/nodir/x.yaml" \
    "$bin" "${m[@]}" "$tmp/text.txt" -o "$tmp/out.d/x.trace" --stats "$tmp/nodir/x.yaml"
t "a failed run leaves no file" no_leftovers
for i in $(seq 1 200); do cat "$tmp/text.txt"; done >"$tmp/long.txt"
"$bin" "${m[@]}" "$tmp/long.txt" -o "$tmp/out.d/x.trace" --stats "$tmp/out.d/x.yaml" 2>/dev/null &
pid=$!
sleep 1
kill -INT $pid
wait $pid
t "an interrupted run exits non-zero" test $? -ne 0
t "an interrupted run leaves no file" no_leftovers

finish
