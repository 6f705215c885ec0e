#!/usr/bin/env bash
# The whole pi pipeline on one model, as a script to adapt:
#   1. pi-profile          FFN activations over a training text: trace + statistics
#   2. pi-train-predictor  one predictor per layer from the trace
#   3. pi-pack             model + statistics + predictors: a packed GGUF
#   4. pi-run              sparse generation of a prompt from the packed model
#   5. pi-run              dense (original and packed model) against sparse:
#                          tokens/s, their ratio, the FFN neurons computed
# Settings come from examples/pipeline.yaml (or --config FILE); flags win.
# One progress line per stage goes to stderr, the generated text and the
# comparison to stdout; every file made and each tool's log go to the work
# directory.  A failing stage stops the script with exit status 1 and the
# tool's error; the tools write their outputs to temporary files renamed
# into place when complete, so nothing half-written is left behind.
set -euo pipefail

prog=pipeline.sh
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    cat <<EOF
Usage: examples/pipeline.sh [OPTION]...
Profile a model over a text, train its predictors, pack it, generate from the
packed model sparsely, and compare the speed of dense and sparse generation.
Settings come from a YAML file (default examples/pipeline.yaml, where each is
explained); these flags override it:

      --config FILE       read the settings from FILE
  -m, --model FILE        GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)
      --text FILE         text to profile (default corpus/train.txt)
      --tokens N          tokens of the text to profile (0: all of it)
      --workdir DIR       where the trace, predictors, packed model and logs go
                          (default pi-work)
  -p, --prompt TEXT       the prompt of stages 4 and 5
  -n, --n-predict N       tokens to generate
  -t, --threads N         threads of every stage (0: every online CPU)
      --sparsity-shift D  pi-run --sparsity-shift for the sparse runs
      --bin DIR           where the pi tools are (default build/bin, else
                          build-cpu/bin)
  -h, --help              show this help and exit

Relative paths are taken from the current directory.
Exit status: 0 on success, 1 when a stage fails, 2 on a usage error.
EOF
}
die() { echo "$prog: $*" >&2; exit 1; }
usage_error() { printf "%s: %s\nTry '%s --help'.\n" "$prog" "$1" "$prog" >&2; exit 2; }

# --- options: flags first, so that they can name the config file ---------

declare -A flag=() cfg=()
config=
while [ $# -gt 0 ]; do
    opt=$1 val=''
    case $opt in
        -h | --help) usage; exit 0 ;;
        --*=*) opt=${1%%=*} val=${1#*=}; shift ;;
        -*)
            [ $# -ge 2 ] || usage_error "option '$opt' needs a value"
            val=$2; shift 2 ;;
        *) usage_error "unexpected argument '$opt'" ;;
    esac
    case $opt in
        --config) config=$val ;;
        -m | --model) flag[model]=$val ;;
        --text) flag[text]=$val ;;
        --tokens) flag[tokens]=$val ;;
        --workdir) flag[workdir]=$val ;;
        -p | --prompt) flag[prompt]=$val ;;
        -n | --n-predict) flag[n-predict]=$val ;;
        -t | --threads) flag[threads]=$val ;;
        --sparsity-shift) flag[sparsity-shift]=$val ;;
        --bin) flag[bin]=$val ;;
        *) usage_error "unknown option '$opt'" ;;
    esac
done

command -v python3 >/dev/null || die "python3 is needed (scripts/install-deps installs it)"

# --- the config file ------------------------------------------------------
# Top-level keys are the pipeline's settings; the sections profile, train,
# pack and run hold extra long options of one tool each (run: stage 4 only).
# Python prints them as shell assignments quoted by shlex, for eval.

if [ -z "$config" ] && [ -f "$root/examples/pipeline.yaml" ]; then
    config=$root/examples/pipeline.yaml
fi
profile_opts=() train_opts=() pack_opts=() run_opts=()
if [ -n "$config" ]; then
    [ -f "$config" ] || die "$config: no such config file"
    python3 -c 'import yaml' 2>/dev/null ||
        die "$config: reading it needs PyYAML (scripts/install-deps installs it)"
    settings=$(python3 - "$config" <<'PY'
import re, shlex, sys, yaml
path = sys.argv[1]
def die(msg):
    print(f"pipeline.sh: {path}: {msg}", file=sys.stderr)
    sys.exit(1)
try:
    with open(path) as f:
        doc = yaml.safe_load(f)
except OSError as e:
    die(e.strerror)
except yaml.YAMLError as e:
    die("not valid YAML: " + " ".join(str(e).split()))
doc = {} if doc is None else doc
if not isinstance(doc, dict):
    die("expected a mapping of settings")
scalars = ("model text tokens workdir keep-trace bin prompt n-predict threads "
           "sparsity-shift chat").split()
# Options the pipeline sets itself, per tool.
own = {"profile": "model output stats stats-only tokens threads quiet config help",
       "train": "model output report eval threads quiet config help",
       "pack": "model stats predictors output dry-run quiet config help",
       "run": "model prompt file n-predict threads chat dense sparsity-shift json "
              "perplexity dry-run quiet config help"}
def text(v):
    return str(v).lower() if isinstance(v, bool) else "" if v is None else str(v)
for key, v in doc.items():
    key = str(key)
    if key in scalars:
        if isinstance(v, (dict, list)):
            die(f"{key}: expected one value")
        print(f"cfg[{key}]={shlex.quote(text(v))}")
    elif key in own:
        if not isinstance(v, (dict, type(None))):
            die(f"{key}: expected a mapping of options")
        opts = []
        for o, x in (v or {}).items():
            o = str(o)
            if not re.fullmatch(r"[a-z][a-z0-9-]*", o) or o in own[key].split():
                die(f"{key}.{o}: not an option the pipeline passes on"
                    + (" (it sets it itself)" if o in own[key].split() else ""))
            if isinstance(x, (dict, list)):
                die(f"{key}.{o}: expected one value")
            if x is True:
                opts.append("--" + o)
            elif x is not None and x is not False:
                opts += ["--" + o, text(x)]
        print(f"{key}_opts=({' '.join(map(shlex.quote, opts))})")
    else:
        die(f"unknown setting '{key}' (settings: {', '.join(scalars)}; "
            f"sections: {', '.join(own)})")
PY
    ) || exit 1
    eval "$settings"
fi

get() { # key default: the flag, else the config, else the default
    if [ -n "${flag[$1]+x}" ]; then echo "${flag[$1]}"
    elif [ -n "${cfg[$1]:-}" ]; then echo "${cfg[$1]}"
    else echo "$2"; fi
}
model=$(get model models/SmolLM2-135M-Instruct.Q4_1.gguf)
text=$(get text corpus/train.txt)
tokens=$(get tokens 20000)
work=$(get workdir pi-work)
keep_trace=$(get keep-trace true)
prompt=$(get prompt "It is a truth universally acknowledged, that")
n_predict=$(get n-predict 64)
threads=$(get threads 0)
shift_=$(get sparsity-shift 0)
chat=$(get chat false)
bin=$(get bin "")

whole='^[0-9]+$'
[[ $tokens =~ $whole ]] || usage_error "tokens: '$tokens' is not a whole number"
[[ $n_predict =~ ^[0-9]*[1-9][0-9]*$ ]] ||
    usage_error "n-predict: '$n_predict' is not a whole number above 0"
[[ $threads =~ $whole ]] || usage_error "threads: '$threads' is not a whole number"
[[ $shift_ =~ ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || usage_error "sparsity-shift: '$shift_' is not a number"
[ -n "$prompt" ] || usage_error "prompt: empty"
case $chat in true) chat_opt=(--chat) ;; false) chat_opt=() ;;
    *) usage_error "chat: '$chat' is not true or false" ;; esac
case $keep_trace in true | false) ;;
    *) usage_error "keep-trace: '$keep_trace' is not true or false" ;; esac
[ "$threads" -gt 0 ] || threads=$(nproc)

# --- what the stages need -------------------------------------------------

tools=(pi-profile pi-train-predictor pi-pack pi-run pi-inspect)
has_tools() { local t; for t in "${tools[@]}"; do [ -x "$1/$t" ] || return 1; done; }
if [ -z "$bin" ]; then
    for b in "$root/build/bin" "$root/build-cpu/bin"; do
        if has_tools "$b"; then bin=$b; break; fi
    done
    [ -n "$bin" ] || die "no pi tools in $root/build/bin or build-cpu/bin; build them with 'make' (or 'make CUDA=0')"
fi
has_tools "$bin" || die "$bin: the pi tools are not all there; build them with 'make', or point --bin at them"
if [ ! -f "$model" ]; then
    if [ "$model" = models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
        die "$model: no such model; 'make model' fetches it (run from the repository root)"
    fi
    die "$model: no such model"
fi
if [ ! -f "$text" ]; then
    case $text in corpus/*) die "$text: no such text; 'make corpus' makes it (run from the repository root)" ;; esac
    die "$text: no such text"
fi
[ -r "$text" ] || die "$text: not readable"
mkdir -p "$work" 2>/dev/null || die "$work: cannot make the work directory"

name=$(basename "$model" .gguf)
trace=$work/profile.trace stats=$work/profile.yaml
pred=$work/predictors.gguf report=$work/predictors.yaml
packed=$work/$name.pi.gguf
runs=(sparse dense-packed dense-original)
outputs=("$trace" "$stats" "$pred" "$report" "$packed" "$work"/{profile,train,pack,generate}.log
         "$work/generate.json")
for r in "${runs[@]}"; do outputs+=("$work/$r.json" "$work/$r.log"); done

# Outputs of an earlier run go first, so that the directory never mixes two
# runs; on exit, whatever a stage left unfinished goes too.
rm -f "${outputs[@]}"
cleanup() { local f; for f in "${outputs[@]}"; do rm -f "$f".tmp*; done; }
trap cleanup EXIT

# --- running a stage ------------------------------------------------------

stage=0 t0=0
now() { echo "${EPOCHREALTIME//[!0-9]/}"; } # microseconds
begin() { stage=$((stage + 1)) t0=$(now); printf '[%d/5] %s ... ' "$stage" "$1" >&2; }
end() { # [summary line]
    local d=$((($(now) - t0 + 50000) / 100000))
    printf 'done in %d.%d s\n' $((d / 10)) $((d % 10)) >&2
    if [ -n "${1:-}" ]; then printf '      %s\n' "$1" >&2; fi
}
# tool LOG [>OUT] CMD...: runs CMD with its stderr in LOG; stops the script
# with the tool's last lines when it fails.  With >OUT, its stdout goes to
# OUT, written whole or not at all.
tool() {
    local log=$1 out='' rc=0; shift
    case $1 in '>'*) out=${1#>}; shift ;; esac
    if [ -n "$out" ]; then
        "$@" >"$out.tmp" 2>"$log" && mv "$out.tmp" "$out" || rc=$?
    else
        "$@" 2>"$log" || rc=$?
    fi
    if [ $rc -ne 0 ]; then
        printf 'failed\n' >&2
        echo "$prog: stage $stage: $(basename "$1") failed (exit status $rc):" >&2
        tail -n 5 "$log" | sed 's/^/  /' >&2
        echo "$prog: its log: $log" >&2
        exit 1
    fi
}
line() { grep -m1 -e "$1" "$2" 2>/dev/null | sed 's/^ *//' || true; }

# --- 1. profile -----------------------------------------------------------

if [ "$tokens" -gt 0 ]; then
    begin "profiling $tokens tokens of $text"; tokens_opt=(--tokens "$tokens")
else
    begin "profiling all of $text"; tokens_opt=()
fi
tool "$work/profile.log" "$bin/pi-profile" -m "$model" -t "$threads" "${tokens_opt[@]}" \
    "${profile_opts[@]}" --stats "$stats" -o "$trace" "$text"
end "$(line '^pi-profile: ' "$work/profile.log")"

# --- 2. train -------------------------------------------------------------

begin "training the predictors"
tool "$work/train.log" "$bin/pi-train-predictor" -m "$model" -t "$threads" "${train_opts[@]}" \
    --report "$report" -o "$pred" "$trace"
end "$(line '^ *mean: predicted' "$work/train.log")"
if [ "$keep_trace" = false ]; then rm -f "$trace"; fi

# --- 3. pack --------------------------------------------------------------

begin "packing $(basename "$model")"
tool "$work/pack.log" "$bin/pi-pack" -m "$model" "${pack_opts[@]}" \
    --stats "$stats" --predictors "$pred" -o "$packed"
end "$(line '^pi-pack: wrote' "$work/pack.log")"
# (Not "pi-inspect | grep -q": under pipefail, grep leaving early fails it.)
if ! info=$("$bin/pi-inspect" "$packed") || ! grep -q '^pi packed model' <<<"$info"; then
    die "$packed: pi-inspect finds no pi section in it"
fi

# --- 4. sparse generation -------------------------------------------------

begin "generating $n_predict tokens sparsely"
tool "$work/generate.log" ">$work/generate.json" "$bin/pi-run" -m "$packed" -t "$threads" \
    "${chat_opt[@]}" --temp 0 "${run_opts[@]}" --sparsity-shift "$shift_" \
    -n "$n_predict" -p "$prompt" --json
generated=$(python3 - "$prompt" "$work/generate.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[2]))
print(f"{j['generated_tokens']} tokens at {j['generation_tokens_per_s']:.2f} tokens/s, "
      f"{j['active_fraction']:.1%} of the FFN neurons computed")
print(sys.argv[1] + j["text"])
PY
)
end "${generated%%$'\n'*}"
printf '%s\n\n' "${generated#*$'\n'}"

# --- 5. dense against sparse ----------------------------------------------
# Same prompt, length, threads and greedy decoding for all three; past the
# end-of-generation token too, so that each times the same number of tokens.

begin "timing dense and sparse generation ($n_predict tokens, $threads threads)"
common=(-t "$threads" "${chat_opt[@]}" --temp 0 --ignore-eos -n "$n_predict" -p "$prompt" --json -q)
tool "$work/dense-original.log" ">$work/dense-original.json" "$bin/pi-run" -m "$model" "${common[@]}"
tool "$work/dense-packed.log" ">$work/dense-packed.json" "$bin/pi-run" -m "$packed" --dense "${common[@]}"
tool "$work/sparse.log" ">$work/sparse.json" "$bin/pi-run" -m "$packed" \
    --sparsity-shift "$shift_" "${common[@]}"
end
for f in "${outputs[@]}"; do case $f in *.log) [ -s "$f" ] || rm -f "$f" ;; esac; done
python3 - "$work" "$(basename "$model")" <<'PY'
import json, sys
work, name = sys.argv[1:]
r = {k: json.load(open(f"{work}/{k}.json")) for k in ("dense-original", "dense-packed", "sparse")}
tps = {k: v["generation_tokens_per_s"] for k, v in r.items()}
s = r["sparse"]
per = s.get("active_fraction_per_layer") or [s["active_fraction"]]
print(f"dense and sparse generation: {name}, {s['generated_tokens']} tokens, greedy, "
      f"{s['threads']} threads")
print(f"  {'':<24}{'tokens/s':>10}   FFN neurons computed")
for k, label in (("dense-original", "dense, original model"), ("dense-packed", "dense, packed model"),
                 ("sparse", "sparse, packed model")):
    a = r[k]["active_fraction"]
    extra = f" (layers {min(per):.1%} to {max(per):.1%}, shift {s.get('sparsity_shift', 0)})" \
        if k == "sparse" else ""
    print(f"  {label:<24}{tps[k]:>10.2f}   {a:.1%}{extra}")
ratio = lambda k: tps["sparse"] / tps[k] if tps[k] > 0 else float("nan")
print(f"  sparse/dense: {ratio('dense-packed'):.2f}x the packed model, "
      f"{ratio('dense-original'):.2f}x the original")
d, t = r["dense-packed"]["token_ids"], s["token_ids"]
same = next((i for i, (a, b) in enumerate(zip(d, t)) if a != b), min(len(d), len(t)))
print(f"  greedy tokens equal to dense: the first {same} of {len(d)}")
PY
