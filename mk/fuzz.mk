# libFuzzer harnesses (tests/fuzz/fuzz_*.c) of the parsers that read untrusted bytes: CSV
# manifests, safetensors, vocabularies + tokenizer, images. clang -fsanitize=fuzzer,address,undefined.
#   make fuzz              each harness for FUZZ_SECONDS (default 60) from its seeds; the corpus
#                          grows in build-fuzz/corpus/<harness>/; crashes land in build-fuzz/crashes/
#   make fuzz-smoke        replays tests/fuzz/regressions/<harness>/* and the seeds, then fuzzes
#                          each harness for FUZZ_SMOKE_RUNS inputs (default 60000) from a fixed
#                          seed and a fresh corpus: part of `make test`, so it must not depend on
#                          luck or on what an earlier `make fuzz` found (same inputs every run)
# A crash found by `make fuzz` becomes a regression: copy the input to
# tests/fuzz/regressions/<harness>/ (the smoke target and tests/c/test_robust.c replay them).
.DEFAULT_GOAL := all
FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_RUNS    ?= 60000
FUZZ_HARNESSES     := manifest safetensors vocab image
# just the runtime that the parsers need (no OpenMP, no BLAS, no generated graphs)
FUZZ_RT_SRC   := runtime/common.c runtime/manifest.c runtime/image.c runtime/synth.c runtime/rng.c \
                 runtime/safetensors.c runtime/tokenizer.c
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   := -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wno-unknown-pragmas \
                 -Iruntime -Itests/fuzz -I/usr/include/stb $(FUZZ_SAN)
FUZZ_OBJ      := $(FUZZ_RT_SRC:%.c=build-fuzz/%.o) build-fuzz/tests/fuzz/common_fuzz.o \
                 build-fuzz/tests/fuzz/stb_impl.o
FUZZ_BINS     := $(FUZZ_HARNESSES:%=build-fuzz/fuzz_%)
# libFuzzer counts its own limits as crashes: 2 GB of RSS and 1 GB in one allocation
FUZZ_OPTS     := -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=65536

.PHONY: fuzz fuzz-smoke fuzz-regress fuzz-deps fuzz-build
.SECONDARY: $(FUZZ_OBJ)

fuzz-deps:
	@RECLF_EXTRA_DEPS="clang libclang-rt-14-dev" tools/install-deps.sh

build-fuzz/%.o: %.c $(wildcard runtime/*.h) tests/fuzz/common_fuzz.h
	@mkdir -p $(dir $@)
	@echo "CC (fuzz) $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# stb_image 2.27's JPEG decoder sums DC differences without a bound (upstream checks since 2.28),
# so a corrupt file can overflow an int there; no check outside the decoder can rule it out. The
# wrapped value is a wrong pixel of a corrupt file, never a bad memory access, so stb's own code is
# built without that one check; ASan and every other UBSan check still cover it, and our code keeps
# them all (docs/ROBUSTNESS.md).
build-fuzz/tests/fuzz/stb_impl.o: FUZZ_CFLAGS += -fno-sanitize=signed-integer-overflow

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	@echo "LD (fuzz) $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ -ljansson -lgomp -lm

# clang and its fuzzer runtime are installed (once) before anything is compiled with them
$(FUZZ_OBJ) $(FUZZ_BINS): | fuzz-deps
fuzz-build: $(FUZZ_BINS)

# fuzz_run LIMIT CORPUS: each harness in turn from its seeds and regressions, new inputs kept in
# CORPUS/<harness>; any crash fails
define fuzz_run
	@set -e; for h in $(FUZZ_HARNESSES); do \
	  mkdir -p $(2)/$$h build-fuzz/crashes/$$h tests/fuzz/regressions/$$h; \
	  echo "== fuzz_$$h: $(1)"; \
	  build-fuzz/fuzz_$$h $(FUZZ_OPTS) $(1) -print_final_stats=0 \
	    -artifact_prefix=build-fuzz/crashes/$$h/ $(2)/$$h tests/fuzz/seeds/$$h \
	    tests/fuzz/regressions/$$h >build-fuzz/fuzz_$$h.log 2>&1 \
	  || { tail -n 40 build-fuzz/fuzz_$$h.log; echo "fuzz_$$h: crash, input in build-fuzz/crashes/$$h/:" \
	       "copy it to tests/fuzz/regressions/$$h/ with the fix"; exit 1; }; \
	  grep -E '^(#[0-9]+ *DONE|Done [0-9]+ runs)' build-fuzz/fuzz_$$h.log | tail -n 1 | sed 's/^/   /'; \
	done
endef

# replays every regression input and seed (a libFuzzer binary given files runs each once)
fuzz-regress: fuzz-build
	@set -e; for h in $(FUZZ_HARNESSES); do \
	  files=$$(ls tests/fuzz/regressions/$$h/* tests/fuzz/seeds/$$h/* 2>/dev/null || true); \
	  [ -z "$$files" ] && continue; \
	  echo "== fuzz_$$h: replaying $$(echo $$files | wc -w) regression and seed inputs"; \
	  build-fuzz/fuzz_$$h $(FUZZ_OPTS) $$files >build-fuzz/replay_$$h.log 2>&1 \
	  || { tail -n 40 build-fuzz/replay_$$h.log; exit 1; }; \
	done

fuzz: fuzz-regress
	$(call fuzz_run,-max_total_time=$(FUZZ_SECONDS),build-fuzz/corpus)

fuzz-smoke: fuzz-regress
	@rm -rf build-fuzz/smoke-corpus
	$(call fuzz_run,-seed=1 -runs=$(FUZZ_SMOKE_RUNS),build-fuzz/smoke-corpus)

EXTRA_TESTS += fuzz-smoke
