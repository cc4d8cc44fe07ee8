# Robustness tests (docs/ROBUSTNESS.md): bad data, bad checkpoints, faults in training, sanitizers.
#   make test-robust     bad data + bad checkpoints + NaN / signals / kill -9 (part of `make test`)
#   make test-asan       runtime + generated code built with -fsanitize=address,undefined into
#                        build-asan/ (own bin/reclf): C tests, a short training run, and the bad-data,
#                        bad-checkpoint and fault scripts. Not in `make test`: the build takes 15+ min here
#   make test-valgrind   a short training run under valgrind --leak-check=full (build-vg/, no -march=native:
#                        valgrind does not decode AVX-512). Not in `make test`: ~9 min here
#   make soak            tests/robust/soak.sh: a long run sampling its resident memory (SOAK_MINUTES=30)
# the Makefile includes mk/*.mk before its `all:` rule: keep `make` building all
.DEFAULT_GOAL := all

.PHONY: test-robust test-bad-data test-bad-ckpt test-faults test-kill9 test-asan test-valgrind soak

test-bad-data: bin/reclf
	@echo "== tests/robust/bad_data.sh" && tests/robust/bad_data.sh $(CURDIR)/bin/reclf
test-bad-ckpt: bin/reclf
	@echo "== tests/robust/bad_checkpoint.sh" && tests/robust/bad_checkpoint.sh $(CURDIR)/bin/reclf
test-faults: bin/reclf
	@echo "== tests/robust/faults.sh" && tests/robust/faults.sh $(CURDIR)/bin/reclf
test-kill9: bin/reclf
	@echo "== tests/robust/kill9.sh" && tests/robust/kill9.sh $(CURDIR)/bin/reclf
# one recipe, one script after the other: the signal and kill -9 tests time their runs
test-robust: bin/reclf
	@for s in bad_data bad_checkpoint faults kill9; do \
	  echo "== tests/robust/$$s.sh"; out=$$(tests/robust/$$s.sh $(CURDIR)/bin/reclf 2>&1); rc=$$?; \
	  grep -A 12 '^FAIL' <<<"$$out"; tail -n 1 <<<"$$out"; [ $$rc -eq 0 ] || exit 1; done

# ---- sanitizers -------------------------------------------------------------------------------
# Same sources and flags as the main build except the optimisation level (-O1: readable stack
# traces, and the kernels still run in seconds). -fno-sanitize-recover makes any UB report fatal.
SAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_CFLAGS  = $(filter-out $(OPT),$(CFLAGS)) -O1 $(SAN_FLAGS)
ASAN_RUNTIME_OBJ = $(RUNTIME_SRC:%.c=build-asan/%.o)
ASAN_GEN_OBJ     = $(GEN_SRC:%.c=build-asan/%.o)
ASAN_TEST_BINS   = $(C_TESTS:tests/c/%.c=build-asan/tests/%)
# any report is fatal, leaks included (tests/robust/sanitized_run.sh sets the same for its runs)
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

build-asan/%.o: %.c $(wildcard runtime/*.h) $(wildcard generated/*.h)
	@mkdir -p $(dir $@)
	@echo "CC (asan) $<"
	@$(CC) $(ASAN_CFLAGS) -c $< -o $@

build-asan/bin/reclf: build-asan/runtime/main.o $(ASAN_RUNTIME_OBJ) $(ASAN_GEN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LDLIBS)

build-asan/tests/%: tests/c/%.c $(ASAN_RUNTIME_OBJ) $(ASAN_GEN_OBJ)
	@mkdir -p $(dir $@)
	@echo "CC (asan) $<"
	@$(CC) $(ASAN_CFLAGS) -Itests/c -o $@ $^ $(LDLIBS) -lcriterion

test-asan: deps build-asan/bin/reclf $(ASAN_TEST_BINS)
	@failed=""; for t in $(ASAN_TEST_BINS); do echo "== $$t"; \
	  $(SAN_ENV) OMP_NUM_THREADS=2 $$t --jobs 1 || failed="$$failed $$t"; done; \
	  [ -z "$$failed" ] || { echo "test-asan: failed:$$failed"; exit 1; }
	@tests/robust/sanitized_run.sh asan $(CURDIR)/build-asan/bin/reclf
	@for s in bad_data bad_checkpoint faults; do \
	  echo "== tests/robust/$$s.sh under ASan+UBSan"; \
	  out=$$($(SAN_ENV) tests/robust/$$s.sh $(CURDIR)/build-asan/bin/reclf 2>&1); rc=$$?; \
	  grep -A 12 '^FAIL' <<<"$$out"; tail -n 1 <<<"$$out"; [ $$rc -eq 0 ] || exit 1; done

# ---- valgrind ---------------------------------------------------------------------------------
VG_CFLAGS  = $(filter-out $(OPT),$(CFLAGS)) -O1
VG_OBJ     = $(RUNTIME_SRC:%.c=build-vg/%.o) $(GEN_SRC:%.c=build-vg/%.o)

build-vg/%.o: %.c $(wildcard runtime/*.h) $(wildcard generated/*.h)
	@mkdir -p $(dir $@)
	@echo "CC (valgrind) $<"
	@$(CC) $(VG_CFLAGS) -c $< -o $@

build-vg/bin/reclf: build-vg/runtime/main.o $(VG_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(VG_CFLAGS) -o $@ $^ $(LDLIBS)

test-valgrind: deps build-vg/bin/reclf
	@RECLF_EXTRA_DEPS="valgrind" tools/install-deps.sh
	@tests/robust/sanitized_run.sh valgrind $(CURDIR)/build-vg/bin/reclf

# ---- soak -------------------------------------------------------------------------------------
SOAK_MINUTES ?= 30
soak: bin/reclf
	@tests/robust/soak.sh $(SOAK_MINUTES)

EXTRA_TESTS += test-robust
