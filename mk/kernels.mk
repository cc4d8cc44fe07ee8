# Kernel tests: the float build of the C that bin/reclfc emits for tests/kernels/ops.lua, run
# against plain reference loops (tests/c/kernels/test_kernels.c, Criterion).
#   make test-kernels
# The graphs compile into build/kernels/ (never generated/); the test links their objects
# directly, outside the Makefile's generic tests/c/test_*.c rule.
KERNELS_GRAPH := tests/kernels/ops.lua
KERNELS_DIR   := build/kernels
KERNELS_TEST  := build/tests/kernels/test_kernels
KERNELS_LIBS  := -fopenmp -lopenblas -lm -lcriterion

# reclfc writes one ops_<entry>.c per entry; the list is only known after it ran, so one
# recipe compiles them all and a stamp stands for the lot. Any compiler change recompiles.
$(KERNELS_DIR)/.objects: $(KERNELS_GRAPH) bin/reclfc $(wildcard compiler/*.lua compiler/*/*.lua) runtime/graph_abi.h $(wildcard runtime/kernel_*.h)
	@rm -rf $(KERNELS_DIR) && mkdir -p $(KERNELS_DIR)
	bin/reclfc $(KERNELS_GRAPH) -o $(KERNELS_DIR) -q
	@set -e; for c in $(KERNELS_DIR)/*.c; do \
	  echo "$(CC) -c $$c"; $(CC) $(CFLAGS) -I$(KERNELS_DIR) -c $$c -o $${c%.c}.o; done
	@touch $@

$(KERNELS_TEST): tests/c/kernels/test_kernels.c $(KERNELS_DIR)/.objects
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(KERNELS_DIR) -o $@ $< $(KERNELS_DIR)/*.o $(KERNELS_LIBS)

.PHONY: test-kernels
test-kernels: $(KERNELS_TEST)
	@echo "== $(KERNELS_TEST)"
	@OMP_NUM_THREADS=2 $(KERNELS_TEST) --jobs 1

EXTRA_TESTS += test-kernels
