#!/usr/bin/env bash
# Tool tests for pi-serve: usage and startup errors, then servers on free
# loopback ports driven by the official openai client (tests/serve_client.py):
# answers and streaming on a synthetic model and (when present) the default
# one, greedy text equal to pi-run's, every class of bad request, the API
# key, a full queue and disconnecting clients (on a synthetic model slow
# enough to keep a slot busy), SIGTERM during a stream, /metrics, and a
# sparse (packed) model.
set -u
BUILD=${BUILD:-build}
bin=$BUILD/bin/pi-serve
run=$BUILD/bin/pi-run
client=tests/serve_client.py
. "$(dirname "$0")/lib.sh"
pids=()
trap 'for p in "${pids[@]}"; do { kill -KILL "$p" && wait "$p"; } 2>/dev/null; done; rm -rf "$tmp"' EXIT

# start NAME ARGS...: pi-serve on a free port (--port 0, read back from its
# startup line), its log in $tmp/NAME.log; sets pid and url.
start() {
    local name=$1 port; shift
    "$bin" --port 0 "$@" 2>"$tmp/$name.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/v1.*|\1|p' \
            "$tmp/$name.log" 2>/dev/null)
        if [ -n "$port" ]; then url=http://127.0.0.1:$port; return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    bad "$name: pi-serve starts ($(head -c 300 "$tmp/$name.log"))"
    return 1
}
# stop: SIGTERM, and the exit status
stop() { kill -TERM "$pid" && wait "$pid"; }
# py SUITE ARGS...: a serve_client.py suite, its ok/FAIL lines counted.
# The time limit only catches a hang: under make sanitize on a busy 2-core
# machine the default model's api suite has taken over 120 s.
py() {
    local out rc
    out=$(timeout 600 python3 "$client" "$@" 2>&1); rc=$?
    printf '%s\n' "$out"
    passed=$((passed + $(grep -c '^ok ' <<<"$out")))
    failed=$((failed + $(grep -c '^FAIL ' <<<"$out")))
    [ $rc -eq 0 ] || bad "serve_client.py $1 ran to its end (exit $rc)"
}
# refs MODEL DIR BYTES PI-RUN-OPTIONS...: pi-run's greedy text for
# serve_client.py's prompts; the long one is BYTES of licence text, several
# batches of tokens
refs() {
    local m=$1 d=$2 bytes=$3; shift 3
    mkdir -p "$d"
    head -c "$bytes" /usr/share/common-licenses/GPL-3 >"$d/long_prompt.txt"
    "$run" -m "$m" -p "The capital of France is" -n 24 --temp 0 -q "$@" >"$d/completion.txt" &&
    "$run" -m "$m" --chat -p "What is the capital of France? Answer in one word." -n 24 \
        --temp 0 -q "$@" >"$d/chat.txt" &&
    "$run" -m "$m" -f "$d/long_prompt.txt" -n 16 --temp 0 -q "$@" >"$d/long.txt" ||
        bad "pi-run writes the reference texts"
}
metric() { # URL NAME: a metric's value
    python3 - "$1" "$2" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1] + "/metrics", timeout=10).read().decode()
print(re.search(rf"^{re.escape(sys.argv[2])} (\S+)$", text, re.M).group(1))
PY
}

python3 tests/ref/synth.py --arch llama --type q4_0 --out "$tmp/llama.gguf" >/dev/null ||
    bad "synth.py writes a model"
# wide enough and with a long context, so that a greedy generation (which
# loops without ever ending) keeps a slot busy for many seconds
python3 tests/ref/synth.py --arch llama --type f32 --layers 4 --embd 512 --ff 1536 --heads 8 \
    --kv-heads 4 --ctx 8192 --out "$tmp/slow.gguf" >/dev/null || bad "synth.py writes a slow model"

t "--help exits 0 and shows usage" bash -c "'$bin' --help | grep -q '^Usage: pi-serve'"
t "the man page lists every long option of --help" bash -c "
    for o in \$('$bin' --help | grep -oE -- '--[a-z-]+' | sort -u); do
        sed 's/\\\\-/-/g' man/pi-serve.1 | grep -q -- \"\$o\" || { echo \"    missing \$o\"; exit 1; }
    done"
fails_with "an unknown flag is a usage error" 2 "Try 'pi-serve --help'" "$bin" --bogus
fails_with "a bad port is a usage error" 2 "port" "$bin" --port 70000
fails_with "a bad body limit is a usage error" 2 "max-body" "$bin" --max-body lots
fails_with "an operand is a usage error" 2 "unexpected argument" "$bin" extra
fails_with "--dense with --sparsity-shift is a usage error" 2 "no effect with --dense" \
    "$bin" --dense --sparsity-shift 1
fails_with "a missing model names the file" 1 "^pi-serve: $tmp/none.gguf: No such file" \
    "$bin" -m "$tmp/none.gguf"
fails_with "--sparsity-shift on a model without predictors is refused" 1 "has no predictors" \
    "$bin" -m "$tmp/llama.gguf" --sparsity-shift 1

# The main server: a config file sets options, the command line overrides.
printf 'slots: 2\nqueue: 0\nmax-body: 4096\nctx-size: 256\nthreads: 1\n' >"$tmp/serve.yaml"
if start main -m "$tmp/llama.gguf" --config "$tmp/serve.yaml" --queue 3; then
    t "the startup line names address, model and slots" \
        grep -q "^pi-serve: listening on $url/v1 (model llama.gguf, 2 slots x 1 thread, context 256" \
        "$tmp/main.log"
    t "--config sets options and a flag overrides the file" \
        test "$(metric "$url" pi_slots) $(metric "$url" pi_queue_limit)" = "2 3"
    fails_with "a port in use is named" 1 "port ${url##*:}: Address already in use" \
        "$bin" -m "$tmp/llama.gguf" --port "${url##*:}"
    refs "$tmp/llama.gguf" "$tmp/refs" 200 -c 256
    py api "$url" llama.gguf "$tmp/refs"
    py errors "$url" llama.gguf 256
    py metrics "$url" llama.gguf dense
    t "one log line per request" grep -q "^pi-serve: 127.0.0.1 POST /v1/chat/completions 200 [0-9]*+[0-9]* tokens" \
        "$tmp/main.log"
    stop
    t "SIGTERM when idle exits 0" test $? -eq 0
    t "... after saying it stopped" grep -q "^pi-serve: stopped" "$tmp/main.log"
fi

if PI_API_KEY=sekrit start auth -m "$tmp/llama.gguf" -t 1; then
    t "the startup line says a key is needed (from PI_API_KEY)" grep -q "API key required" \
        "$tmp/auth.log"
    py auth "$url" llama.gguf sekrit
    stop
fi

if start slow -m "$tmp/slow.gguf" --slots 1 --queue 1 -t 1 -c 8192 --max-tokens 8000; then
    py busy "$url" slow.gguf
    py sigterm "$url" slow.gguf "$pid"
    wait "$pid"
    t "SIGTERM during a stream: pi-serve exits 0 once it is done" test $? -eq 0
    t "... after saying it finishes the request in flight" \
        grep -q "^pi-serve: SIGTERM: finishing 1 request" "$tmp/slow.log"
fi

# --quiet: nothing on stderr, so the port is chosen here (a port free a
# moment ago, which another program could take in between: then this fails).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" -m "$tmp/llama.gguf" -t 1 -q --port "$port" 2>"$tmp/quiet.log" &
pid=$!
pids+=("$pid")
t "--quiet: the server answers" python3 - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(100):
    try:
        urllib.request.urlopen(url + "/health", timeout=5).read()
        break
    except OSError:
        time.sleep(0.1)
req = urllib.request.Request(url + "/v1/completions", data=b'{"prompt": "x", "max_tokens": 2}')
sys.exit(urllib.request.urlopen(req, timeout=10).status != 200)
PY
stop
t "--quiet: nothing on stderr, exit 0" test $? -eq 0 -a ! -s "$tmp/quiet.log"

# A packed model with predictors runs sparse and says how sparse.
if packed_synth 4000 3; then
    if start sparse -m "$tmp/pk.gguf" -t 1 --sparsity-shift 0.5; then
        t "a packed model is served sparse" grep -q "sparse)" "$tmp/sparse.log"
        py metrics "$url" pk.gguf sparse
        stop
    fi
else
    bad "profile, train and pack a synthetic model"
fi

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$model" ]; then
    if start smol -m "$model" -c 1024 --slots 2 -t 1; then
        refs "$model" "$tmp/smol" 1500 -c 1024
        t "SmolLM2: pi-run's greedy chat answer says Paris" grep -qi paris "$tmp/smol/chat.txt"
        py api "$url" SmolLM2-135M-Instruct.Q4_1.gguf "$tmp/smol"
        stop
    fi
else
    echo "skip the default model checks: $model absent (make model)"
    skipped=$((skipped + 1))
fi
# under make sanitize (or a TSan build), a server's reports land in its log
t "no sanitizer report in any server's log" bash -c "! grep -l 'Sanitizer\|runtime error' '$tmp'/*.log"
finish
