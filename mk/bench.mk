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

# the --no-fuse reference form of the reclf training graph, for the fused-against-unfused row
build/unfused/reclf.c: $(wildcard graphs/*.lua graphs/lib/*.lua compiler/*.lua compiler/*/*.lua)
	@mkdir -p build/unfused
	@$(LUAJIT) compiler/reclfc.lua graphs/reclf.lua --no-fuse -o build/unfused -q
build/unfused/reclf.o: build/unfused/reclf.c runtime/profile.h
	$(CC) $(CFLAGS) -Ibuild/unfused -DRECLF_PROFILE -c $< -o $@
bin/bench-step-unfused: bench/step.c $(RUNTIME_OBJ) build/unfused/reclf.o $(GEN_OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ bench/step.c $(RUNTIME_OBJ) build/unfused/reclf.o $(filter-out build/generated/reclf.o,$(GEN_OBJ)) $(LDLIBS)
