#!/usr/bin/env bash
# Tool tests for pi-pack, on a synthetic model profiled and trained here and
# on the default model when it is present: the packed file's pi section and
# tensors against the inputs, exactness of the permutation (greedy tokens and
# logits of dense inference against the unpacked model), byte-identical
# repacking, the placement plan (pi-pack --dry-run against pi-run --dry-run
# on the packed file), and bad input (another model's statistics or
# predictors, an already packed model, an unsupported down type, a budget
# below the always-resident tensors, a tampered pi section).
set -u
BUILD=${BUILD:-build}
bin=$BUILD/bin/pi-pack
prof=$BUILD/bin/pi-profile
train=$BUILD/bin/pi-train-predictor
run=$BUILD/bin/pi-run
logits=$BUILD/tests/tool_logits
. "$(dirname "$0")/lib.sh"
no_output() { [ ! -e "$tmp/out.gguf" ] && [ -z "$(ls "$tmp" | grep 'out.gguf.tmp')" ]; }

python3 tests/ref/synth.py --arch llama --type q4_1 --layers 2 --embd 64 --ff 256 \
    --out "$tmp/m.gguf" >/dev/null &&
python3 tests/ref/synth.py --arch llama --type q4_1 --layers 2 --embd 64 --ff 256 --seed 7 \
    --out "$tmp/other.gguf" >/dev/null || bad "synth.py writes the models"
words_text "$tmp/text.txt" 600 1
m=(-m "$tmp/m.gguf")
"$prof" "${m[@]}" -q --every 1 --ctx 128 --tokens 6000 "$tmp/text.txt" -o "$tmp/t.trace" \
    --stats "$tmp/s.yaml" &&
"$prof" -m "$tmp/other.gguf" -q --ctx 128 --tokens 500 --stats-only --stats "$tmp/other.yaml" \
    "$tmp/text.txt" &&
"$train" "${m[@]}" -q --rank 8 --epochs 3 "$tmp/t.trace" -o "$tmp/p.gguf"
[ -s "$tmp/p.gguf" ] && [ -s "$tmp/s.yaml" ] || bad "profiling and training the inputs"
# pi-train-predictor refuses the other model's trace, so its predictors come
# from a trace of its own.
"$prof" -m "$tmp/other.gguf" -q --every 1 --ctx 128 --tokens 1000 "$tmp/text.txt" -o "$tmp/o.trace" &&
"$train" -m "$tmp/other.gguf" -q --rank 8 --epochs 1 "$tmp/o.trace" -o "$tmp/op.gguf" ||
    bad "training predictors for the other model"
in=("${m[@]}" --stats "$tmp/s.yaml" --predictors "$tmp/p.gguf")

t "--help exits 0 and shows usage" bash -c "'$bin' --help | grep -q '^Usage: pi-pack'"
# A device or FIFO as output is written in place, never replaced by a file
# renamed onto it (as root, that would replace /dev/null itself).
mkfifo "$tmp/fifo"
cat "$tmp/fifo" >"$tmp/from-fifo" &
"$bin" "${in[@]}" -q -o "$tmp/fifo"; wait
t "a FIFO as output stays a FIFO and receives the file" bash -c "
    [ -p '$tmp/fifo' ] && head -c 4 '$tmp/from-fifo' | grep -q GGUF"
mkfifo "$tmp/fifo2"
cat "$tmp/fifo2" >"$tmp/stats-fifo" &
"$prof" "${m[@]}" -q --ctx 128 --tokens 300 --stats-only --stats "$tmp/fifo2" "$tmp/text.txt"; wait
t "so does pi-profile's --stats" bash -c "[ -p '$tmp/fifo2' ] && grep -q 'format: pi-actstats' '$tmp/stats-fifo'"
fails_with "an unknown flag is a usage error" 2 "Try 'pi-pack --help'" "$bin" --bogus
fails_with "no statistics is a usage error" 2 "no statistics" "$bin" "${m[@]}" -o "$tmp/x.gguf"
fails_with "no output is a usage error" 2 "no output" "$bin" "${in[@]}"
fails_with "--dry-run with -o is a usage error" 2 "dry-run" "$bin" "${in[@]}" --dry-run -o x
fails_with "a bad level is a usage error" 2 "level" "$bin" "${in[@]}" --level 0.5 -o x
fails_with "a bad size is a usage error" 2 "vram" "$bin" "${in[@]}" --vram 6Q -o x
fails_with "an unknown down type is a usage error" 2 "down-type" "$bin" "${in[@]}" \
    --down-type q9_9 -o x
t "binary output to a terminal is refused (exit 2)" bash -c \
    "out=\$(script -qec \"'$bin' ${in[*]} -o -\" /dev/null); [ \$? -eq 2 ] && echo \"\$out\" | grep -q terminal"

"$bin" "${in[@]}" -q -o "$tmp/a.gguf"
t "packing exits 0 and writes the file" test -s "$tmp/a.gguf"
"$bin" "${in[@]}" -q -o "$tmp/b.gguf"
t "packing again gives the same bytes" cmp -s "$tmp/a.gguf" "$tmp/b.gguf"
"$bin" "${in[@]}" -q -o - >"$tmp/c.gguf"
t "packing to stdout gives the same bytes" cmp -s "$tmp/a.gguf" "$tmp/c.gguf"
t "the default down type of a quantised model is Q8_0" \
    bash -c "'$BUILD/bin/pi-inspect' '$tmp/a.gguf' | grep -q 'neuron-major (blk.N.ffn_down_t), Q8_0'"
t "pi-inspect shows the pi section and the predictors" \
    bash -c "'$BUILD/bin/pi-inspect' '$tmp/a.gguf' | grep -q '^pi packed model: from the model with fingerprint' &&
             '$BUILD/bin/pi-inspect' '$tmp/a.gguf' | grep -q 'predictors: trained for'"

# The file against its inputs: perm a permutation, frequencies the statistics'
# at 0.99 in non-increasing order, gate/up rows and down columns permuted, the
# predictors' output rows permuted, every other tensor and key unchanged.
t "the packed tensors and keys are the inputs, permuted" python3 - "$tmp" <<'PY'
import sys, yaml, numpy as np, gguf
from gguf.quants import dequantize
d = sys.argv[1]
src, pk, pr = (gguf.GGUFReader(f"{d}/{n}") for n in ("m.gguf", "a.gguf", "p.gguf"))
st = yaml.safe_load(open(f"{d}/s.yaml"))
T = lambda r: {t.name: t for t in r.tensors}
ts, tp, tq = T(src), T(pk), T(pr)
deq = lambda t: dequantize(t.data, t.tensor_type).reshape(-1, int(t.shape[0]))
F = pk.fields
perm = np.array(F["pi.ffn.perm"].contents()).reshape(2, 256)
freq = np.array(F["pi.ffn.freq"].contents()).reshape(2, 256)
assert F["pi.version"].contents() == 1
for il in range(2):
    p = perm[il]
    assert sorted(p) == list(range(256))
    f = np.array(st["layers"][il]["frequency"]["0.99"])
    assert np.all(np.diff(freq[il].astype(int)) <= 0)
    assert np.abs(freq[il] - np.rint(f[p] * 65535)).max() <= 1, "frequencies"
    for w in ("gate", "up"):
        a, b = ts[f"blk.{il}.ffn_{w}.weight"], tp[f"blk.{il}.ffn_{w}.weight"]
        assert np.array_equal(np.array(a.data)[p], np.array(b.data)), w
    down, dt = deq(ts[f"blk.{il}.ffn_down.weight"]), deq(tp[f"blk.{il}.ffn_down_t.weight"])
    assert dt.shape == (256, 64)
    # Q8_0 requantisation: within half a step of each block's scale
    assert np.abs(down[:, p].T - dt).max() <= np.abs(down).max() / 127 * 0.51 + 1e-6
    w2, pw2 = np.array(tq[f"pred.{il}.w2"].data), np.array(tp[f"pred.{il}.w2"].data)
    assert np.array_equal(w2[p], pw2) and np.array_equal(np.array(tq[f"pred.{il}.b2"].data)[p],
                                                        np.array(tp[f"pred.{il}.b2"].data))
    assert np.array_equal(np.array(tq[f"pred.{il}.w1"].data), np.array(tp[f"pred.{il}.w1"].data))
for name, t in ts.items():
    if "ffn_gate" in name or "ffn_up" in name or "ffn_down" in name:
        continue
    assert np.array_equal(np.array(t.data), np.array(tp[name].data)), name
for f in src.fields.values():
    if not f.name.startswith("GGUF."):
        assert F[f.name].contents() == f.contents(), f.name
PY

# Exactness of dense inference (--dense 1: the packed model carries
# predictors): with float activations (--exact) and an F32 down projection
# the packed model computes the same sums in another order; with the default
# Q8_0 down, logits move by the requantisation only.
ids=1,5,9,3,7,2,8,4
"$bin" "${in[@]}" -q --down-type f32 -o "$tmp/f32.gguf"
for f in m f32 a; do
    "$logits" "$tmp/$f.gguf" $ids --exact 1 --dense 1 --out "$tmp/$f.bin" --greedy 16 >"$tmp/$f.greedy"
done
t "dense greedy tokens of the packed model (F32 down) equal the original's" \
    cmp -s "$tmp/m.greedy" "$tmp/f32.greedy"
t "dense greedy tokens of the packed model (Q8_0 down) equal the original's" \
    cmp -s "$tmp/m.greedy" "$tmp/a.greedy"
t "logits: F32 down within 1e-4 of the largest, Q8_0 within 2e-2" python3 - "$tmp" <<'PY'
import sys, numpy as np
d = sys.argv[1]
m, f, a = (np.fromfile(f"{d}/{n}.bin", np.float32) for n in ("m", "f32", "a"))
s = np.abs(m).max()
ef, ea = np.abs(m - f).max() / s, np.abs(m - a).max() / s
print(f"    relative logit error: F32 {ef:.2e}, Q8_0 {ea:.2e}")
sys.exit(not (ef < 1e-4 and ea < 2e-2))
PY
t "pi-run generates from the packed model" \
    bash -c "'$run' -m '$tmp/a.gguf' -p 'river hill' -n 4 --temp 0 --ignore-eos -q | grep -q ."

# Placement: the plan pi-pack prints equals the one pi-run computes from the
# stored frequencies; it is stored as the file's default.
"$bin" "${in[@]}" --vram 300M --ctx 256 --dry-run >"$tmp/plan1"
"$run" -m "$tmp/a.gguf" --vram 300M -c 256 --dry-run >"$tmp/plan2"
t "--dry-run prints a plan per layer" grep -q "^    1 " "$tmp/plan1"
t "pi-run --dry-run on the packed file computes the same plan" \
    cmp -s <(tail -n +2 "$tmp/plan1") "$tmp/plan2"
"$bin" "${in[@]}" -q --vram 300M --ctx 256 -o "$tmp/v.gguf"
t "--vram stores the plan" \
    bash -c "'$BUILD/bin/pi-inspect' '$tmp/v.gguf' | grep -q 'plan:       --vram 300.0 MiB, ctx 256'"

# Bad input: one line, exit 1, no output left behind.
fails_with "statistics of another model are refused" 1 "statistics of another model" \
    "$bin" "${m[@]}" --stats "$tmp/other.yaml" --predictors "$tmp/p.gguf" -o "$tmp/out.gguf"
t "  ... and leave no file" no_output
fails_with "predictors of another model are refused" 1 "predictors of another model" \
    "$bin" "${m[@]}" --stats "$tmp/s.yaml" --predictors "$tmp/op.gguf" -o "$tmp/out.gguf"
t "  ... and leave no file" no_output
fails_with "an already packed model is refused" 1 "already packed" \
    "$bin" -m "$tmp/a.gguf" --stats "$tmp/s.yaml" -o "$tmp/out.gguf"
fails_with "a down type whose blocks do not divide n_embd is refused" 1 \
    "unsupported quant type Q4_K" "$bin" "${in[@]}" --down-type q4_k -o "$tmp/out.gguf"
t "  ... and leaves no file" no_output
fails_with "a down type without a quantiser is refused" 1 "unsupported quant type IQ4_NL" \
    "$bin" "${in[@]}" --down-type iq4_nl -o "$tmp/out.gguf"
fails_with "a budget below the always-resident tensors is refused" 1 "is below the" \
    "$bin" "${in[@]}" --vram 1M -o "$tmp/out.gguf"
t "  ... and leaves no file" no_output
fails_with "a missing statistics file is refused" 1 "nope.yaml" \
    "$bin" "${m[@]}" --stats "$tmp/nope.yaml" -o "$tmp/out.gguf"
fails_with "pi-run --dry-run on an unpacked model is refused" 1 "not a packed model" \
    "$run" "${m[@]}" --vram 1G --dry-run

# A tampered pi section is refused by every reader, with one line.
python3 - "$tmp" <<'PY' || bad "writing tampered packed models"
import sys
sys.path.insert(0, "tests/ref")
from regguf import rewrite
d = sys.argv[1]
def dup(name, v):
    if name == "pi.ffn.perm":
        v = list(v); v[1] = v[0]
    return v
def rise(name, v):
    if name == "pi.ffn.freq":
        v = list(v); v[5] = 65535
    return v
def fp(name, v):
    return 12345 if name == "pi.predictor.fingerprint" else v
def ver(name, v):
    return 99 if name == "pi.version" else v
for out, fn in (("dup", dup), ("rise", rise), ("fp", fp), ("ver", ver)):
    rewrite(f"{d}/a.gguf", f"{d}/{out}.gguf", key=fn)
PY
fails_with "a perm that is not a permutation is refused" 1 "not a permutation" \
    "$run" -m "$tmp/dup.gguf" -p x -n 1
fails_with "frequencies out of order are refused" 1 "decreasing order" \
    "$run" -m "$tmp/rise.gguf" -p x -n 1
fails_with "predictors trained for another source are refused" 1 "trained for model" \
    "$run" -m "$tmp/fp.gguf" -p x -n 1
fails_with "an unknown pi format version is refused" 1 "format version 99" \
    "$run" -m "$tmp/ver.gguf" -p x -n 1
fails_with "pi-inspect reports a tampered section" 1 "not a permutation" \
    "$BUILD/bin/pi-inspect" "$tmp/dup.gguf"

# The default model: the permutation is exact there too.  Statistics from a
# short text are enough to order the neurons; predictors are not needed.
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$model" ]; then
    head -c 8000 /usr/share/common-licenses/GPL-3 >"$tmp/lic.txt"
    "$prof" -m "$model" -q --stats-only --stats "$tmp/smol.yaml" --ctx 256 "$tmp/lic.txt"
    "$bin" -m "$model" -q --stats "$tmp/smol.yaml" -o "$tmp/smol.gguf"
    "$bin" -m "$model" -q --stats "$tmp/smol.yaml" -o "$tmp/smol2.gguf"
    t "SmolLM2: packing twice gives the same bytes" cmp -s "$tmp/smol.gguf" "$tmp/smol2.gguf"
    sids=504,3458,282,4649,314,253,3432,29
    "$logits" "$model" $sids --exact 1 --threads 2 --greedy 24 --out "$tmp/s0.bin" >"$tmp/s0"
    "$logits" "$tmp/smol.gguf" $sids --exact 1 --dense 1 --threads 2 --greedy 24 --out "$tmp/s1.bin" >"$tmp/s1"
    t "SmolLM2: dense greedy tokens of the packed model equal the original's" \
        cmp -s "$tmp/s0" "$tmp/s1"
    PI_ISA=scalar "$logits" "$model" $sids --threads 2 --out "$tmp/sq.bin"
    # The yardstick is pi's own dense path, whose activations are quantised
    # to 8 bits: requantising down to Q8_0 is a rounding of the same size
    # (measured: 3.5e-2 against 3.3e-2), so it may move the logits at most
    # 1.5 times as much.  The scalar kernels make the yardstick the same on
    # every CPU: the SIMD ones round the activations' scales differently
    # (2.1e-2 with AVX2 on the same tokens).
    t "SmolLM2: logits move about as much as 8-bit activations move them" \
        python3 - "$tmp" <<'PY'
import sys, numpy as np
d = sys.argv[1]
a, b, q = (np.fromfile(f"{d}/{n}.bin", np.float32) for n in ("s0", "s1", "sq"))
rms = lambda x: np.sqrt(np.mean((a - x) ** 2) / np.mean(a ** 2))
print(f"    SmolLM2 logit error (rms, relative): packed Q8_0 down {rms(b):.2e}, "
      f"8-bit activations {rms(q):.2e}")
sys.exit(not (rms(b) < 1.5 * rms(q) and a.argmax() == b.argmax()))
PY
else
    echo "skip SmolLM2 checks: $model is not present (make model)"
    skipped=$((skipped + 1))
fi
finish
