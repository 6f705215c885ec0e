#!/usr/bin/env bash
# Tool tests for pi-inspect: exit codes, error lines, pipes, --key, --config.
# Uses a GGUF the tests write, and the default model too when it is present.
set -u
BUILD=${BUILD:-build}
bin=$BUILD/bin/pi-inspect
. "$(dirname "$0")/lib.sh"

$BUILD/tests/tool_gguf write "$tmp/t.gguf" || bad "tool_gguf writes a file"

t "--help exits 0 and shows usage" bash -c "'$bin' --help | grep -q '^Usage: pi-inspect'"
"$bin" --bogus >/dev/null 2>"$tmp/err"; rc=$?
t "an unknown flag exits 2" test $rc -eq 2
t "a usage error says how to get help" grep -q "Try 'pi-inspect --help'" "$tmp/err"
"$bin" "$tmp/missing.gguf" >/dev/null 2>"$tmp/err"; rc=$?
t "a missing file exits 1" test $rc -eq 1
t "the error line names the program and the file" \
    grep -q "^pi-inspect: $tmp/missing.gguf: No such file" "$tmp/err"
t "the error is one line" test "$(wc -l <"$tmp/err")" -eq 1
head -c 700 "$tmp/t.gguf" >"$tmp/cut.gguf"
"$bin" "$tmp/cut.gguf" >"$tmp/out" 2>"$tmp/err"; rc=$?
t "a truncated file exits 1" test $rc -eq 1
t "a truncated file prints nothing on stdout" test ! -s "$tmp/out"
t "a truncated file is named as such" grep -q "cut.gguf: .*beyond end of file\|truncated" "$tmp/err"
echo "not a model" >"$tmp/text.gguf"
"$bin" "$tmp/text.gguf" 2>"$tmp/err" >/dev/null
t "a text file is not GGUF" grep -q "not a GGUF file" "$tmp/err"

t "--key prints a bare string" test "$("$bin" -k general.architecture "$tmp/t.gguf")" = llama
t "--key prints an integer" test "$("$bin" --key test.i32 "$tmp/t.gguf")" = -42
"$bin" -k no.such.key "$tmp/t.gguf" 2>"$tmp/err" >/dev/null; rc=$?
t "--key of an absent key exits 1" test $rc -eq 1
t "reads from a pipe" bash -c "cat '$tmp/t.gguf' | '$bin' | grep -q 'q4_k.weight *Q4_K'"
t "text output lists every tensor" test "$("$bin" "$tmp/t.gguf" | grep -c '\.weight ')" -eq 3
t "--json parses and has the tensors" python3 -c "
import json, subprocess, sys
j = json.loads(subprocess.check_output(['$bin', '--json', '$tmp/t.gguf']))
sys.exit(not ([t['name'] for t in j['tensors']] == ['f32.weight', 'q8_0.weight', 'q4_k.weight']
              and len(j['fingerprint']) == 16))"
printf 'json: true\nno-meta: true\n' >"$tmp/c.yaml"
t "--config sets options" bash -c "'$bin' --config '$tmp/c.yaml' '$tmp/t.gguf' | python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(\"metadata\" in j)'"
printf 'nested:\n  x: 1\n' >"$tmp/bad.yaml"
"$bin" --config "$tmp/bad.yaml" "$tmp/t.gguf" >/dev/null 2>"$tmp/err"; rc=$?
t "a bad config is a usage error naming the file" bash -c "test $rc -eq 2 && grep -q 'bad.yaml: line 2' '$tmp/err'"

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$model" ]; then
    t "the default model: 272 tensors, llama" bash -c \
        "'$bin' --json --no-meta '$model' | python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(len(j[\"tensors\"]) != 272)' && test \"\$('$bin' -k general.architecture '$model')\" = llama"
else
    echo "skip the default model checks: $model absent (make model)"
fi
finish
