# make bench: bench/run.sh. bin/bench-step is bin/reclf's runtime with the training graphs of
# reclf, convirt and gloria rebuilt with -DRECLF_PROFILE (per-kernel timing).
PROFILED := reclf convirt gloria
PROF_OBJ := $(PROFILED:%=build/prof/%.o)
build/prof/%.o: generated/%.c runtime/profile.h
	@mkdir -p build/prof
	$(CC) $(CFLAGS) -DRECLF_PROFILE -c $< -o $@

bin/bench-step: bench/step.c $(RUNTIME_OBJ) $(PROF_OBJ) $(GEN_OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ bench/step.c $(RUNTIME_OBJ) $(PROF_OBJ) $(filter-out $(PROFILED:%=build/generated/%.o),$(GEN_OBJ)) $(LDLIBS)
