# reclf: Lua graphs -> generated C -> bin/reclf.
#   make            build bin/reclfc and bin/reclf (installs missing Debian packages first)
#   make generate   compile every graphs/*.lua into generated/
#   make train      train the default RECLF model on SynthCXR
#   make test       compiler tests, gradient checks, runtime tests
#   make bench      kernel and training-step benchmarks (see bench/)
SHELL := /bin/bash
# parallel builds by default (sub-makes share the top-level job server)
ifeq ($(MAKELEVEL),0)
MAKEFLAGS += --jobs=$(shell nproc)
endif
MAKEFLAGS += --no-print-directory
CC ?= cc
LUAJIT ?= luajit
export LUA_PATH := $(CURDIR)/?.lua;$(CURDIR)/?/init.lua;;
OPT ?= -O3 -march=native
CFLAGS ?= $(OPT) -g
CFLAGS += -std=c11 -Wall -Wextra -fopenmp -D_POSIX_C_SOURCE=200809L \
          -Iruntime -Igenerated -I/usr/include/x86_64-linux-gnu/openblas-openmp -I/usr/include/stb
LDLIBS += -fopenmp -lopenblas -ljansson -lstb -lm

GRAPHS      := $(sort $(wildcard graphs/*.lua))
RUNTIME_SRC := $(sort $(filter-out runtime/main.c,$(wildcard runtime/*.c)))
GEN_SRC      = $(sort $(wildcard generated/*.c))
RUNTIME_OBJ := $(RUNTIME_SRC:%.c=build/%.o)
GEN_OBJ      = $(GEN_SRC:%.c=build/%.o)
C_TESTS     := $(sort $(wildcard tests/c/test_*.c))
C_TEST_BINS := $(C_TESTS:tests/c/%.c=build/tests/%)

# Makefile fragments of test and tool families (sanitizers, fuzzing, kernel tests, MPI, ...):
# each mk/*.mk may add targets and append to EXTRA_TESTS, which `make test` runs last.
EXTRA_TESTS :=
-include mk/*.mk

# training defaults for `make train` (override on the command line)
MODEL ?= reclf
STEPS ?= 300
BATCH ?= 32
SEED  ?= 1
OUT   ?= runs/$(MODEL)

.PHONY: all deps generate check-generated train test test-lua test-c gradcheck bench clean
all: deps bin/reclfc bin/reclf

deps:
	@tools/install-deps.sh

bin/reclfc: compiler/reclfc.sh
	@mkdir -p bin
	cp $< $@ && chmod +x $@

generate: deps bin/reclfc
	@$(LUAJIT) compiler/generate_all.lua graphs generated

check-generated: deps bin/reclfc
	@$(LUAJIT) compiler/generate_all.lua graphs generated --check

build/%.o: %.c $(wildcard runtime/*.h) $(wildcard generated/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

bin/reclf: build/runtime/main.o $(RUNTIME_OBJ) $(GEN_OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/tests/%: tests/c/%.c $(RUNTIME_OBJ) $(GEN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/c -o $@ $^ $(LDLIBS) -lcriterion

# generate (a no-op when generated/ is current), build, train; sub-makes see new graph files
train: deps bin/reclfc
	@$(MAKE) generate
	@$(MAKE) all
	bin/reclf train --model $(MODEL) --steps $(STEPS) --batch $(BATCH) --seed $(SEED) --data synth --out $(OUT)

# suites run one after another (their output stays readable); builds run in parallel
test: all
	@$(MAKE) $(C_TEST_BINS)
	@$(MAKE) --jobs=1 test-lua gradcheck test-c $(EXTRA_TESTS)
	@echo "make test: all suites passed"

test-lua: deps
	@$(LUAJIT) tests/lua/run.lua

gradcheck: deps bin/reclfc
	@$(LUAJIT) tests/gradcheck/run.lua $(CURDIR)

test-c: $(C_TEST_BINS)
	@set -e; for t in $(C_TEST_BINS); do echo "== $$t"; OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive $$t --jobs 1; done

bench: all bin/bench-step bin/bench-step-unfused
	@RECLF_EXTRA_DEPS="python3-torch python3-numpy linux-perf" tools/install-deps.sh
	@bench/run.sh

clean:
	rm -rf build bin
