# pi: one build for libpi.a, the tools, the tests, the benchmarks and the
# fuzzers.  `make help` lists the targets.  CUDA kernels are compiled and
# linked when nvcc is found; `make CUDA=0` builds for the CPU only.

CC      ?= cc
PREFIX  ?= /usr/local
CUDA_HOME ?= /usr/local/cuda
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls $(CUDA_HOME)/bin/nvcc 2>/dev/null)
CUDA    ?= $(if $(NVCC),1,0)
# CPU-only objects differ from CUDA ones (stubs in libpi/cuda.c), so they get
# their own tree and switching CUDA= never mixes the two.
BUILD   ?= $(if $(filter 1,$(CUDA)),build,build-cpu)
CUDA_ARCH ?= sm_90

# -ffp-contract=off: the scalar kernels must round exactly like the reference
# (no fused multiply-add behind our back); SIMD files use FMA explicitly.
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -ffp-contract=off -pthread $(WARN) -Ilibpi
LDLIBS  := -lzstd -lyaml -lmicrohttpd -ljansson -lm -pthread
SIMD_AVX2 := -mavx2 -mfma -mf16c

LIB_SRC   := $(sort $(wildcard libpi/*.c))
TOOL_SRC  := $(sort $(wildcard tools/pi-*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
TESTHELP_SRC := $(sort $(wildcard tests/tool_*.c))
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
CU_SRC    := $(sort $(wildcard kernels/*.cu))

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
ifeq ($(CUDA),1)
  LIB_OBJ += $(CU_SRC:%.cu=$(BUILD)/%.o)
  override CFLAGS += -DPI_CUDA=1
  LDLIBS  += -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lstdc++
endif
LIB       := $(BUILD)/libpi.a
TOOLS     := $(TOOL_SRC:tools/%.c=$(BUILD)/bin/%)
TESTS     := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TESTHELPS := $(TESTHELP_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES   := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.SECONDARY:
.PHONY: all help test check sanitize fuzz fuzz-run bench install clean model models corpus
all: $(LIB) $(TOOLS)

help:
	@echo "make            build libpi.a and the tools into $(BUILD)/ (CUDA=$(CUDA))"
	@echo "make test       build and run every test (unit, tool, Python reference)"
	@echo "make sanitize   run the unit tests under ASan/UBSan"
	@echo "make fuzz       build the libFuzzer targets; make fuzz-run FUZZ_SECONDS=600"
	@echo "make bench      micro-benchmarks and pi-run against llama.cpp (not tests)"
	@echo "make model      fetch the default model; make models: every test model"
	@echo "make corpus     fetch the Jane Austen text into corpus/ (train.txt, heldout.txt)"
	@echo "make install PREFIX=/usr/local"

$(BUILD)/libpi/%_avx2.o: libpi/%_avx2.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SIMD_AVX2) -MMD -c $< -o $@

$(BUILD)/libpi/%_avx512.o: libpi/%_avx512.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c -MMD -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -c $< -o $@

$(BUILD)/kernels/%.o: kernels/%.cu
	@mkdir -p $(@D)
	$(NVCC) -O2 -arch=$(CUDA_ARCH) -Ilibpi -Xcompiler -Wall,-Werror -MD -MF $(@:.o=.d) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -lcmocka -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

# Tests: every tests/test_*.c is a cmocka program; tests/*.py and
# tests/*.sh are reference and tool tests.  scripts/run-tests prints the
# closing "N passed, N failed" line.
test: all $(TESTS) $(TESTHELPS)
	@BUILD=$(BUILD) scripts/run-tests $(TESTS)

check: test

# Sanitizer build: separate tree, same tests.
sanitize:
	$(MAKE) BUILD=build-san CUDA=0 CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  test

FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZERS  := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 60
fuzz: $(FUZZERS)
# The fuzzers need only the format modules; each lists what it links.
FUZZ_LIB := libpi/gguf.c libpi/err.c libpi/quant.c libpi/quant_k.c libpi/config.c \
  libpi/tokenizer.c libpi/tokenizer_bpe.c libpi/tokenizer_spm.c libpi/unicode.c libpi/unicode_data.c \
  libpi/actstats.c libpi/actstats_read.c libpi/json.c libpi/trace.c \
  libpi/predictor.c libpi/predictor_avx2.c libpi/gguf_write.c libpi/outfile.c libpi/cpu.c libpi/packinfo.c
# pi-serve's request parser and error objects (jansson)
FUZZ_LIB += libpi/serve_request.c libpi/serve_response.c
build-fuzz/%: fuzz/%.c $(FUZZ_LIB) $(wildcard libpi/*.h)
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -Ilibpi -mavx2 -mfma -mf16c -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=all $< $(FUZZ_LIB) -lzstd -lyaml -ljansson -lm -pthread -o $@
# Seeds are written by the tests' own writers, not checked in; for the
# trace reader, a trace, the same trace twice over (two parts) and its
# decompressed content (which fuzz_trace compresses itself).
fuzz-run: fuzz $(BUILD)/tests/tool_gguf $(BUILD)/tests/tool_trace
	@mkdir -p build-fuzz/seeds/fuzz_gguf build-fuzz/seeds/fuzz_trace
	$(BUILD)/tests/tool_gguf write build-fuzz/seeds/fuzz_gguf/pi.gguf
	$(BUILD)/tests/tool_trace write build-fuzz/seeds/fuzz_trace/t.trace
	cat build-fuzz/seeds/fuzz_trace/t.trace build-fuzz/seeds/fuzz_trace/t.trace \
	  > build-fuzz/seeds/fuzz_trace/t2.trace
	$(BUILD)/tests/tool_trace plain build-fuzz/seeds/fuzz_trace/plain
	cat build-fuzz/seeds/fuzz_trace/plain build-fuzz/seeds/fuzz_trace/plain \
	  > build-fuzz/seeds/fuzz_trace/plain2
	@mkdir -p build-fuzz/seeds/fuzz_actstats build-fuzz/seeds/fuzz_predictor
	cp build-fuzz/seeds/fuzz_gguf/pi.gguf build-fuzz/seeds/fuzz_predictor/
	@mkdir -p build-fuzz/seeds/fuzz_packed && cp build-fuzz/seeds/fuzz_gguf/pi.gguf build-fuzz/seeds/fuzz_packed/
	printf 'format: pi-actstats\nversion: 1\nfingerprint: "0x0000000000000001"\nn_layer: 1\nn_ff: 2\ntokens: 1\nlayers:\n  - layer: 0\n    frequency: {"0.9": [0.5, 1], "0.95": [1, 1], "0.99": [1, 1]}\n' \
	  > build-fuzz/seeds/fuzz_actstats/s.yaml
	@mkdir -p build-fuzz/seeds/fuzz_config build-fuzz/seeds/fuzz_tokenizer
	cp examples/*.yaml build-fuzz/seeds/fuzz_config/
	@mkdir -p build-fuzz/seeds/fuzz_serve_request
	printf '{"model": "m.gguf", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 8, "temperature": 0.5, "top_p": 0.9, "seed": 7, "stop": ["a", "b"], "stream": true, "stream_options": {"include_usage": true}}' \
	  > build-fuzz/seeds/fuzz_serve_request/chat.json
	printf '{"prompt": ["Once"], "max_completion_tokens": 4, "top_k": 3, "min_p": 0.1, "stop": "x", "n": 1, "logprobs": null}' \
	  > build-fuzz/seeds/fuzz_serve_request/completion.json
	@for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	    build-fuzz/corpus-$$n build-fuzz/seeds/$$n || exit 1; done

# Dot-product kernels, then pi-run beside llama.cpp (LLAMA_BENCH,
# LLAMA_BENCH_NOAMX: paths to llama-bench builds; skipped when unset), the
# sparse pipeline, pi-serve under load, and the GPU (skipped without one).
bench: all $(BENCHES)
	@for b in $(BENCHES); do $$b || exit 1; done
	@if [ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then BUILD=$(BUILD) bench/bench_run.sh; \
	  else echo "bench: skipping pi-run (make model first)"; fi
	@if [ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] && [ -f corpus/train.txt ]; then \
	  BUILD=$(BUILD) bench/bench_profile.sh && BUILD=$(BUILD) bench/bench_pack.sh && \
	  BUILD=$(BUILD) bench/bench_sparse.sh; \
	  else echo "bench: skipping pi-profile, pi-pack and sparse (make model corpus first)"; fi
	@if [ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then BUILD=$(BUILD) bench/bench_serve.sh; \
	  else echo "bench: skipping pi-serve (make model first)"; fi
	@BUILD=$(BUILD) bench/bench_gpu.sh

# bench/gen_model writes random-weight GGUFs in real models' shapes for the
# benchmarks (not a benchmark itself, so not in BENCHES); its test needs it.
GEN_MODEL := $(BUILD)/bench/gen_model
bench test: $(GEN_MODEL)

model:
	scripts/get-model smollm2-135m

# Every model the tests use when present (the default one and Qwen2.5-Coder-0.5B).
models:
	scripts/get-model smollm2-135m qwen2.5-coder-0.5b

# Jane Austen: five novels to profile on, Persuasion held out for perplexity.
corpus:
	scripts/get-corpus

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	$(if $(wildcard man/*.5),install -m 644 $(wildcard man/*.5) $(DESTDIR)$(PREFIX)/share/man/man5/)

clean:
	rm -rf build build-cpu build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
