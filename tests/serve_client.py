#!/usr/bin/env python3
"""Drives a running pi-serve for tests/test_pi_serve.sh with the official
`openai` client (and http.client where a client library would hide the
bytes: malformed JSON, oversized bodies, disconnects).

    serve_client.py SUITE URL MODEL [ARGS...]

Each check prints "ok   NAME" or "FAIL NAME (why)"; the shell test counts
those lines.  Suites:
    api URL MODEL [REFS]  answers, streaming = whole text, stop sequences,
                          and with REFS (a directory of pi-run's greedy output:
                          completion.txt for PROMPT, chat.txt for --chat
                          CHAT_PROMPT, long.txt for long_prompt.txt) greedy
                          text = pi-run's
    errors URL MODEL N_CTX  each class of bad request and its 4xx (on a server
                          with --max-body 4096)
    auth URL MODEL KEY    the API key
    busy URL MODEL        queue full (503) and disconnects freeing slots, on a
                          server with --slots 1 --queue 1 and a slow model
    sigterm URL MODEL PID SIGTERM during a stream: the stream completes
    metrics URL MODEL [sparse|dense]  /metrics is Prometheus text (after one
                          completion)
"""
import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse

import openai

PROMPT = "The capital of France is"
CHAT_PROMPT = "What is the capital of France? Answer in one word."


def report(name, good, why=""):
    print(("ok   " if good else "FAIL ") + name + ("" if good else f" ({why})"), flush=True)


def check(name, fn):
    """Runs fn; it returns (good, why) or raises."""
    try:
        good, why = fn()
    except Exception as e:  # a check that crashes is a failed check
        good, why = False, f"{type(e).__name__}: {e}"
    report(name, good, str(why)[:300])


def client(url, key="none"):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def raw(url, method, path, body=None, headers=None, timeout=30):
    """(status, headers dict, body bytes) of one request."""
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def is_error_object(data, code=None):
    e = json.loads(data)["error"]
    return (set(e) == {"message", "type", "param", "code"} and e["message"] and
            e["type"] in ("invalid_request_error", "server_error") and
            (code is None or e["code"] == code))


# ---- api ----------------------------------------------------------------------

def chat(c, model, stream=False, **kw):
    """(text, finish_reason, usage) of a chat completion, streamed or not."""
    msgs = [{"role": "user", "content": kw.pop("content", CHAT_PROMPT)}]
    if not stream:
        r = c.chat.completions.create(model=model, messages=msgs, **kw)
        assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
        assert r.choices[0].message.role == "assistant"
        return r.choices[0].message.content, r.choices[0].finish_reason, r.usage
    text, finish, usage, n = "", None, None, 0
    for ch in c.chat.completions.create(model=model, messages=msgs, stream=True,
                                        stream_options={"include_usage": True}, **kw):
        assert ch.object == "chat.completion.chunk"
        n += 1
        if ch.usage:
            usage = ch.usage
        for choice in ch.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish, usage


def complete(c, model, stream=False, **kw):
    kw.setdefault("prompt", PROMPT)
    if not stream:
        r = c.completions.create(model=model, **kw)
        assert r.object == "text_completion" and r.id.startswith("cmpl-")
        return r.choices[0].text, r.choices[0].finish_reason, r.usage
    text, finish, usage = "", None, None
    for ch in c.completions.create(model=model, stream=True,
                                   stream_options={"include_usage": True}, **kw):
        if ch.usage:
            usage = ch.usage
        for choice in ch.choices:
            text += choice.text or ""
            finish = choice.finish_reason or finish
    return text, finish, usage


def same_streamed(fn, c, model, **kw):
    a = fn(c, model, **kw)
    b = fn(c, model, stream=True, **kw)
    good = (a[0] == b[0] and a[1] == b[1] and a[2].completion_tokens == b[2].completion_tokens
            and a[2].prompt_tokens == b[2].prompt_tokens and
            a[2].total_tokens == a[2].prompt_tokens + a[2].completion_tokens)
    return good, f"whole {a[0]!r} {a[1]} {a[2]} / streamed {b[0]!r} {b[1]} {b[2]}"


def pi_run_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        t = f.read()
    return t[:-1] if t.endswith("\n") else t  # pi-run ends its output with a newline


def suite_api(url, model, refs=None):
    c = client(url)
    check("GET /v1/models lists the model", lambda: (
        [m.id for m in c.models.list().data] == [model], model))
    check("GET /v1/models/ID retrieves it", lambda: (c.models.retrieve(model).id == model, ""))
    alias = model[:-5] if model.endswith(".gguf") else model
    check("the model may be named without .gguf", lambda: (
        complete(c, alias, max_tokens=2)[2].completion_tokens >= 0, ""))
    for temp in (0.0, 0.9):
        check(f"chat: streamed text = whole text (temperature {temp}, seed 7)",
              lambda: same_streamed(chat, c, model, max_tokens=24, temperature=temp, seed=7))
        check(f"completion: streamed text = whole text (temperature {temp}, seed 7)",
              lambda: same_streamed(complete, c, model, max_tokens=24, temperature=temp, seed=7))
    check("a seed repeats its text; another seed differs (temperature 1.5)", lambda: (
        lambda a, b, d: (a == b and a != d, f"{a!r} {b!r} {d!r}"))(
            complete(c, model, max_tokens=24, temperature=1.5, seed=3)[0],
            complete(c, model, max_tokens=24, temperature=1.5, seed=3)[0],
            complete(c, model, max_tokens=24, temperature=1.5, seed=4)[0]))

    def length():
        t, f, u = complete(c, model, max_tokens=5, temperature=0)
        return (f == "stop" and u.completion_tokens <= 5) or (f == "length" and
                                                               u.completion_tokens == 5), (t, f, u)
    check("max_tokens bounds the completion; finish_reason says why", length)

    def stop():
        whole = complete(c, model, max_tokens=24, temperature=0)[0]
        if len(whole) < 8:
            return True, "skipped: text too short"
        s = whole[4:7]
        want = whole[:whole.index(s)]
        a = complete(c, model, max_tokens=24, temperature=0, stop=[s, "\x01never"])
        b = complete(c, model, max_tokens=24, temperature=0, stop=s, stream=True)
        return (a[0] == want and a[1] == "stop" and b[0] == want and b[1] == "stop",
                f"stop {s!r}: want {want!r}, got {a[:2]} and streamed {b[:2]}")
    check("a stop sequence ends the text before it, streamed or not", stop)
    if refs:
        def greedy():
            want = pi_run_text(f"{refs}/completion.txt")
            a = complete(c, model, max_tokens=24, temperature=0)[0]
            b = complete(c, model, max_tokens=24, temperature=0, stream=True)[0]
            return a == want and b == want, f"pi-run {want!r}, pi-serve {a!r}, streamed {b!r}"
        check("completion: greedy text = pi-run's (and again, from the cached prompt)", greedy)

        def greedy_chat():
            want = pi_run_text(f"{refs}/chat.txt")
            a = chat(c, model, max_tokens=24, temperature=0)[0]
            return a == want, f"pi-run --chat {want!r}, pi-serve {a!r}"
        check("chat: greedy answer = pi-run --chat's", greedy_chat)

        def greedy_long():
            with open(f"{refs}/long_prompt.txt", encoding="utf-8") as f:
                long = f.read()
            want = pi_run_text(f"{refs}/long.txt")
            got = []
            # fresh, then with the slot's cache holding all of it, then after
            # a request sharing only part of it
            for prompt in (long, long, long[:len(long) * 3 // 4], long):
                got.append(complete(c, model, prompt=prompt, max_tokens=16, temperature=0)[0])
            return (got[0] == want and got[1] == want and got[3] == want,
                    f"pi-run {want!r}, pi-serve {got}")
        check("a long prompt: greedy text = pi-run's whatever the slot's cache held", greedy_long)

        def sampled_long():
            with open(f"{refs}/long_prompt.txt", encoding="utf-8") as f:
                long = f.read()
            a = [complete(c, model, prompt=long, max_tokens=12, temperature=1, seed=s)[0]
                 for s in range(3)]
            complete(c, model, prompt=long[:len(long) // 2], max_tokens=4)
            b = [complete(c, model, prompt=long, max_tokens=12, temperature=1, seed=s,
                          stream=s == 1)[0] for s in range(3)]
            return a == b, f"{a} then {b}"
        check("a long prompt: a seed gives the same text whatever the slot did before",
              sampled_long)

    def concurrent():
        out, threads = {}, []
        for i in range(4):
            def go(i=i):
                out[i] = complete(c, model, max_tokens=12, temperature=0.8, seed=i)[0]
            threads.append(threading.Thread(target=go))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        again = [complete(c, model, max_tokens=12, temperature=0.8, seed=i)[0] for i in range(4)]
        return [out.get(i) for i in range(4)] == again, f"{out} vs {again}"
    check("four clients at once get what each would alone", concurrent)


# ---- errors ---------------------------------------------------------------------

def expect_api_error(fn, status, code=None, param=None):
    try:
        fn()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        good = (e.status_code == status and (code is None or body.get("code") == code) and
                (param is None or body.get("param") == param) and body.get("message"))
        return good, f"{e.status_code} {body}"
    return False, "no error"


def suite_errors(url, model, n_ctx):
    c = client(url)
    msgs = [{"role": "user", "content": "hi"}]
    check("a wrong type is 400 naming the parameter", lambda: expect_api_error(
        lambda: c.chat.completions.create(model=model, messages=msgs, temperature="hot"),
        400, "invalid_type", "temperature"))
    check("a temperature above 2 is 400", lambda: expect_api_error(
        lambda: c.completions.create(model=model, prompt="x", temperature=3), 400,
        "invalid_value", "temperature"))
    check("max_tokens 0 is 400", lambda: expect_api_error(
        lambda: c.completions.create(model=model, prompt="x", max_tokens=0), 400, None,
        "max_tokens"))
    check("messages that are not an array are 400", lambda: expect_api_error(
        lambda: c.chat.completions.create(model=model, messages="hi"), 400, None, "messages"))
    check("a message without a known role is 400", lambda: expect_api_error(
        lambda: c.chat.completions.create(model=model, messages=[{"role": "wizard",
                                                                   "content": "x"}]),
        400, None, "messages[0].role"))
    check("n > 1 is 400", lambda: expect_api_error(
        lambda: c.completions.create(model=model, prompt="x", n=2), 400, None, "n"))
    check("more than four stop sequences are 400", lambda: expect_api_error(
        lambda: c.completions.create(model=model, prompt="x", stop=list("abcde")), 400, None,
        "stop"))
    check("an unknown model is 404 model_not_found", lambda: expect_api_error(
        lambda: c.completions.create(model="gpt-9", prompt="x"), 404, "model_not_found"))
    long_prompt = "a " * (n_ctx + 10)  # a token a word at least, under --max-body
    check("a prompt longer than the context is 400 context_length_exceeded",
          lambda: expect_api_error(lambda: c.completions.create(model=model, prompt=long_prompt),
                                   400, "context_length_exceeded"))
    check("prompt + max_tokens over the context is 400", lambda: expect_api_error(
        lambda: c.completions.create(model=model, prompt="x", max_tokens=n_ctx),
        400, "context_length_exceeded", "max_tokens"))

    def raw_error(method, path, body, status, code=None, extra=None):
        def fn():
            st, hd, data = raw(url, method, path, body)
            good = st == status and is_error_object(data, code) and (extra is None or extra(hd))
            return good, f"{st} {hd} {data[:200]!r}"
        return fn
    check("malformed JSON is 400 invalid_json", raw_error(
        "POST", "/v1/chat/completions", b'{"messages": [', 400, "invalid_json"))
    check("a JSON array body is 400", raw_error("POST", "/v1/completions", b"[1]", 400))
    check("invalid UTF-8 in the body is 400", raw_error(
        "POST", "/v1/completions", b'{"prompt": "\xff\xfe"}', 400, "invalid_json"))
    check("an empty body is 400", raw_error("POST", "/v1/completions", b"", 400))
    check("a body over --max-body is 413", raw_error(
        "POST", "/v1/completions",
        json.dumps({"prompt": "x" * 10000}).encode(), 413, "request_too_large"))

    def chunked_too_big():
        u = urllib.parse.urlparse(url)
        cn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        cn.request("POST", "/v1/completions", body=iter([b'{"prompt": "', b"y" * 9000, b'"}']),
                   headers={"Content-Type": "application/json"}, encode_chunked=True)
        r = cn.getresponse()
        data = r.read()
        return r.status == 413 and is_error_object(data), f"{r.status} {data[:200]!r}"
    check("a chunked body over --max-body is 413", chunked_too_big)
    check("an unknown path is 404", raw_error("GET", "/v1/nothing", None, 404, "unknown_url"))
    check("GET on a POST endpoint is 405 with Allow: POST", raw_error(
        "GET", "/v1/chat/completions", None, 405, None, lambda h: h.get("allow") == "POST"))
    check("POST on /v1/models is 405", raw_error("POST", "/v1/models", b"{}", 405))

    def health():
        st, hd, data = raw(url, "GET", "/health")
        return st == 200 and json.loads(data) == {"status": "ok"}, f"{st} {data!r}"
    check("the server still answers after the bad requests", health)


# ---- auth -----------------------------------------------------------------------

def suite_auth(url, model, key):
    def no_key():
        st, hd, data = raw(url, "POST", "/v1/completions", b'{"prompt": "x"}')
        return (st == 401 and hd.get("www-authenticate") == "Bearer" and
                is_error_object(data, "invalid_api_key")), f"{st} {hd} {data!r}"
    check("no API key is 401 with WWW-Authenticate: Bearer", no_key)
    check("a wrong API key is 401", lambda: expect_api_error(
        lambda: client(url, key=key + "x").models.list(), 401, "invalid_api_key"))
    check("the right API key is accepted", lambda: (
        complete(client(url, key), model, max_tokens=2)[2] is not None, ""))

    def open_paths():
        h = raw(url, "GET", "/health")[0]
        m = raw(url, "GET", "/metrics")[0]
        return h == 200 and m == 401, f"/health {h}, /metrics {m}"
    check("/health needs no key, /metrics does", open_paths)


# ---- busy: queue full, disconnects ----------------------------------------------------

def metric(url, name):
    st, _, data = raw(url, "GET", "/metrics")
    m = re.search(rf"^{re.escape(name)} (\S+)$", data.decode(), re.M)
    return float(m.group(1)) if m else None


def wait_metric(url, name, pred, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        v = metric(url, name)
        if v is not None and pred(v):
            return True, v
        time.sleep(0.05)
    return False, metric(url, name)


class Stream:
    """A streamed completion over a raw socket, to close at will."""

    def __init__(self, url, model, max_tokens):
        u = urllib.parse.urlparse(url)
        self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        body = json.dumps({"model": model, "prompt": PROMPT, "max_tokens": max_tokens,
                           "temperature": 0, "stream": True,
                           "stream_options": {"include_usage": True}})
        self.c.request("POST", "/v1/completions", body=body,
                       headers={"Content-Type": "application/json"})
        self.r = self.c.getresponse()

    def event(self):
        """The next event's data (str), None at the end."""
        while True:
            line = self.r.readline()
            if not line:
                return None
            line = line.decode().strip()
            if line.startswith("data: "):
                return line[6:]

    def first_text(self):
        while True:
            d = self.event()
            if d is None or (d != "[DONE]" and json.loads(d)["choices"] and
                             json.loads(d)["choices"][0]["text"]):
                return d

    def close(self):
        self.c.sock.shutdown(socket.SHUT_RDWR)
        self.c.close()


def suite_busy(url, model):
    c = client(url)
    a = Stream(url, model, 4000)
    check("a long stream starts", lambda: (a.r.status == 200 and a.first_text() is not None,
                                           a.r.status))
    started = threading.Event()
    release = threading.Event()
    b_state = {}

    def run_b():
        b = Stream(url, model, 4000)
        b_state["status"] = b.r.status
        b_state["text"] = b.first_text()  # only once a slot is free
        started.set()
        release.wait(30)
        b.close()
    tb = threading.Thread(target=run_b)
    tb.start()
    check("a second request waits in the queue", lambda: wait_metric(
        url, "pi_queue_depth", lambda v: v == 1))
    check("a third is refused: 503 server_busy", lambda: expect_api_error(
        lambda: c.completions.create(model=model, prompt="x", max_tokens=2), 503,
        "server_busy"))
    a.close()
    check("closing the first stream frees its slot for the waiting one", lambda: (
        started.wait(10) and b_state.get("text") is not None, b_state))
    check("the closed stream's generation was cancelled", lambda: wait_metric(
        url, "pi_cancelled_total", lambda v: v >= 1))
    release.set()
    tb.join()
    check("after both disconnect, no slot is busy", lambda: wait_metric(
        url, "pi_active_slots", lambda v: v == 0))

    def non_stream_disconnect():
        before = metric(url, "pi_cancelled_total")
        u = urllib.parse.urlparse(url)
        cn = http.client.HTTPConnection(u.hostname, u.port, timeout=0.5)
        cn.request("POST", "/v1/completions", json.dumps(
            {"model": model, "prompt": PROMPT, "max_tokens": 4000, "temperature": 0}),
            headers={"Content-Type": "application/json"})
        try:
            cn.getresponse()
            return False, "answered within 0.5 s"
        except (socket.timeout, TimeoutError):
            cn.close()
        good, v = wait_metric(url, "pi_cancelled_total", lambda v: v > before)
        good2, v2 = wait_metric(url, "pi_active_slots", lambda v: v == 0)
        return good and good2, f"cancelled {before} -> {v}, active {v2}"
    check("a client leaving a whole-text request frees the slot too", non_stream_disconnect)
    check("a later request succeeds", lambda: (
        complete(c, model, max_tokens=3, temperature=0)[1] in ("stop", "length"), ""))


# ---- sigterm ----------------------------------------------------------------------

def suite_sigterm(url, model, pid):
    n = 200
    s = Stream(url, model, n)
    first = s.first_text()
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.2)

    def refused():
        u = urllib.parse.urlparse(url)
        try:
            socket.create_connection((u.hostname, u.port), timeout=2).close()
        except OSError:
            return True, ""
        return False, "a new connection was accepted"
    check("after SIGTERM new connections are refused", refused)
    events = [first]
    while True:
        d = s.event()
        if d is None:
            break
        events.append(d)
    usage = [json.loads(d)["usage"] for d in events if d and d != "[DONE]" and
             json.loads(d).get("usage")]
    finish = [json.loads(d)["choices"][0]["finish_reason"] for d in events
              if d and d != "[DONE]" and json.loads(d)["choices"]]
    check("a stream in flight at SIGTERM runs to its end", lambda: (
        events[-1] == "[DONE]" and usage and usage[0]["completion_tokens"] == n and
        finish[-1] == "length", f"{events[-3:]}"))


# ---- metrics ----------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*)\})? '
                    r'([-+]?([0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?|NaN|Inf))$')


def parse_prometheus(text):
    """{name: {labels string: value}}; raises on a line that is not valid
    text exposition format or a sample without its TYPE line."""
    typed, out = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            p = line.split(None, 3)
            if p[1] == "TYPE":
                assert p[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                typed[p[2]] = p[3]
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line {line!r}"
        assert m.group(1) in typed, f"{m.group(1)} has no TYPE"
        out.setdefault(m.group(1), {})[m.group(3) or ""] = float(m.group(5))
    return out


def suite_metrics(url, model, mode="dense"):
    complete(client(url), model, max_tokens=4, temperature=0)
    st, hd, data = raw(url, "GET", "/metrics")
    check("/metrics is text/plain version 0.0.4", lambda: (
        st == 200 and hd["content-type"].startswith("text/plain; version=0.0.4"), hd))
    m = {}

    def parses():
        m.update(parse_prometheus(data.decode()))
        need = {"pi_requests_total", "pi_tokens_generated_total", "pi_prompt_tokens_total",
                "pi_tokens_per_second", "pi_queue_depth", "pi_active_slots", "pi_errors_total"}
        return need <= set(m), sorted(need - set(m))
    check("/metrics parses as Prometheus text with every metric", parses)
    check("/metrics counts requests by endpoint and status", lambda: (
        m["pi_requests_total"].get('endpoint="/v1/completions",status="200"', 0) >= 1 and
        m["pi_tokens_generated_total"][""] > 0 and m["pi_tokens_per_second"][""] > 0 and
        m["pi_active_slots"][""] == 0, m.get("pi_requests_total")))
    if mode == "sparse":
        check("a sparse model reports its active fraction", lambda: (
            0 < m.get("pi_sparse_active_fraction", {}).get("", 0) <= 1,
            m.get("pi_sparse_active_fraction")))
    else:
        check("a dense model reports no active fraction", lambda: (
            "pi_sparse_active_fraction" not in m, ""))


def main(argv):
    suite, args = argv[1], argv[2:]
    if suite == "api":
        suite_api(*args)
    elif suite == "errors":
        suite_errors(args[0], args[1], int(args[2]))
    elif suite == "auth":
        suite_auth(*args)
    elif suite == "busy":
        suite_busy(*args)
    elif suite == "sigterm":
        suite_sigterm(args[0], args[1], int(args[2]))
    elif suite == "metrics":
        suite_metrics(*args)
    else:
        print(f"serve_client.py: unknown suite {suite!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
