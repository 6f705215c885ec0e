#!/usr/bin/env bash
# Load test of pi-serve: CLIENTS concurrent clients (Python threads over
# http.client, one keep-alive connection each) send REQUESTS chat
# completions in all, half of them streamed, each with its own prompt and
# seed; prints throughput, latency percentiles (and time to the first
# streamed text), how many answers were complete and valid, and the
# server's RSS before, after a first round and after a second, identical
# one (VmRSS and peak VmHWM from /proc: flat memory means the two rounds
# end at the same RSS); for
# scale, pi-run's speed on one stream with a slot's threads.
#
#   bench/bench_serve.sh [-m MODEL] [-c CLIENTS] [-n REQUESTS] [--tokens N]
#                        [--slots N] [-t THREADS]
set -u
BUILD=${BUILD:-build}
bin=$BUILD/bin/pi-serve
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
clients=8 requests=64 tokens=64 slots=2 threads=
while [ $# -gt 0 ]; do
    case $1 in
    -m) model=$2; shift ;;
    -c) clients=$2; shift ;;
    -n) requests=$2; shift ;;
    --tokens) tokens=$2; shift ;;
    --slots) slots=$2; shift ;;
    -t) threads=$2; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_serve.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$bin" ] || { echo "bench_serve.sh: $bin: not built (make)" >&2; exit 1; }
[ -f "$model" ] || { echo "bench_serve.sh: $model: no such model (make model)" >&2; exit 1; }
cpus=$(nproc)
threads=${threads:-$(( cpus / slots > 0 ? cpus / slots : 1 ))}

log=$(mktemp)
"$bin" -m "$model" --port 0 --slots "$slots" -t "$threads" --queue "$clients" -c 2048 2>"$log" &
pid=$!
trap 'kill -KILL $pid 2>/dev/null; rm -f "$log"' EXIT
port=
for _ in $(seq 100); do
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/v1.*|\1|p' "$log" 2>/dev/null)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "bench_serve.sh: pi-serve did not start: $(cat "$log")" >&2; exit 1; }
rss() { awk -v k="$1:" '$1 == k { printf "%.1f MiB", $2 / 1024 }' "/proc/$pid/status"; }

echo "pi-serve load test: $(basename "$model"), $slots slots x $threads threads, $clients clients,"
echo "  $requests chat completions of up to $tokens tokens (half streamed), $(nproc) CPUs"
echo "server RSS before: $(rss VmRSS)"
# one stream alone, for scale: what a slot's threads make without the server
base=$("$BUILD/bin/pi-run" -m "$model" --chat -p "Write two sentences about the sea." \
    -n "$tokens" -t "$threads" --ignore-eos --json 2>/dev/null |
    python3 -c 'import json, sys; print(round(json.load(sys.stdin)["generation_tokens_per_s"], 1))')
echo "pi-run alone, $threads threads: $base generated tokens/s"
# Two identical rounds: the first pages the model in and allocates the
# slots' caches; memory that keeps growing would show between the rounds.
load() {
python3 - "$port" "$clients" "$requests" "$tokens" <<'PY'
import http.client, json, sys, threading, time

port, clients, requests, tokens = (int(a) for a in sys.argv[1:5])
topics = ["the sea", "a red fox", "winter", "bread", "a lighthouse", "the moon", "trains",
          "a garden", "rain", "a small town", "clocks", "an old letter"]
lock = threading.Lock()
next_i = [0]
results = []  # (ok, seconds, first_text_seconds or None, completion_tokens, why)


def one(conn, i):
    stream = i % 2 == 1
    body = {"messages": [{"role": "user", "content": f"Write two sentences about {topics[i % len(topics)]}."}],
            "max_tokens": tokens, "temperature": 0.8, "seed": i, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        r.read()
        return False, time.perf_counter() - t0, None, 0, f"status {r.status}"
    if not stream:
        j = json.loads(r.read())
        c = j["choices"][0]
        good = (isinstance(c["message"]["content"], str) and
                c["finish_reason"] in ("stop", "length") and
                j["usage"]["completion_tokens"] >= 1 and
                j["usage"]["total_tokens"] == j["usage"]["prompt_tokens"] + j["usage"]["completion_tokens"])
        return good, time.perf_counter() - t0, None, j["usage"]["completion_tokens"], ""
    first, text, finish, usage, done = None, "", None, None, False
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode().strip()
        if not line.startswith("data: "):
            continue
        d = line[6:]
        if d == "[DONE]":
            done = True
            continue
        j = json.loads(d)
        usage = j.get("usage") or usage
        for c in j["choices"]:
            if c["delta"].get("content"):
                first = first or time.perf_counter() - t0
                text += c["delta"]["content"]
            finish = c["finish_reason"] or finish
    good = done and finish in ("stop", "length") and usage and usage["completion_tokens"] >= 1
    return bool(good), time.perf_counter() - t0, first, usage["completion_tokens"] if usage else 0, \
        "" if good else "incomplete stream"


def client():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    while True:
        with lock:
            i = next_i[0]
            next_i[0] += 1
        if i >= requests:
            break
        try:
            res = one(conn, i)
        except Exception as e:  # a broken connection counts as a failed request
            res = (False, 0.0, None, 0, f"{type(e).__name__}: {e}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        with lock:
            results.append(res)
    conn.close()


t0 = time.perf_counter()
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.perf_counter() - t0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


good = [r for r in results if r[0]]
lat = [r[1] for r in good]
ttft = [r[2] for r in good if r[2] is not None]
toks = sum(r[3] for r in good)
why = {}
for r in results:
    if not r[0]:
        why[r[4]] = why.get(r[4], 0) + 1
print(f"complete valid answers: {len(good)}/{requests}" +
      (f"  (failures: {why})" if why else ""))
print(f"wall time: {wall:.2f} s; {len(good) / wall:.2f} requests/s; "
      f"{toks / wall:.1f} generated tokens/s ({toks} tokens)")
print(f"latency: p50 {pct(lat, 50):.3f} s, p90 {pct(lat, 90):.3f} s, p99 {pct(lat, 99):.3f} s, "
      f"max {max(lat) if lat else float('nan'):.3f} s")
print(f"time to first streamed text: p50 {pct(ttft, 50):.3f} s, p99 {pct(ttft, 99):.3f} s")
PY
}
echo "round 1:"; load
echo "server RSS after round 1: $(rss VmRSS)"
echo "round 2:"; load
echo "server RSS after round 2: $(rss VmRSS) (peak $(rss VmHWM))"
curl -s "http://127.0.0.1:$port/metrics" | awk '/^pi_(tokens_per_second|prompt_tokens_cached_total|prompt_tokens_total|tokens_generated_total|errors_total) / { printf "  %s %s\n", $1, $2 }'
kill -TERM $pid
wait $pid
rc=$?
echo "pi-serve exited $rc after SIGTERM"
[ $rc -eq 0 ]
