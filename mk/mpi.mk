# Data-parallel training over MPI (runtime/dist.c; README "Training on several machines").
#   make              builds bin/reclf with MPI when OpenMPI is there (installing it on first use)
#   make test-mpi     2-rank tests on loopback (part of `make test`): --gather equivalence with one
#                     process, plain data parallelism against --grad-accum, the --check-sync guard
#   RECLF_NO_MPI=1    build without MPI (and skip the install): bin/reclf stays single-process
#
# Why the install happens while this file is read, not in a recipe: whether the compiler is mpicc
# and whether -DRECLF_MPI is set must be decided before make builds anything, and make fixes its
# variables when it reads the makefiles. A recipe that installed OpenMPI would run after that
# decision, so the first `make` on a fresh machine would build without MPI and only the second
# with it. So when mpicc is missing, the $(shell ...) below runs tools/install-deps.sh once, right
# here, and the check that follows sees its result. It runs at most once per build folder
# (build/.mpi-install-tried), so a machine where the install fails (no registry, not root) is not
# retried on every make and simply builds the single-process binary. `make clean` skips it.

MPI_DEPS := libopenmpi-dev openmpi-bin

# Targets here must not become make's default goal (the Makefile includes mk/*.mk before `all:`)
.DEFAULT_GOAL := all

MPI_MODE := off
ifneq ($(RECLF_NO_MPI),1)
ifneq ($(MAKECMDGOALS),clean)
MPICC := $(shell command -v mpicc 2>/dev/null)
ifeq ($(MPICC),)
ifeq ($(wildcard build/.mpi-install-tried),)
$(info mk/mpi.mk: mpicc not found: installing $(MPI_DEPS) for data-parallel training (once))
MPI_INSTALL_RC := $(shell mkdir -p build && touch build/.mpi-install-tried; \
                    RECLF_EXTRA_DEPS="$(MPI_DEPS)" tools/install-deps.sh >&2; echo $$?)
MPICC := $(shell command -v mpicc 2>/dev/null)
ifeq ($(MPICC),)
$(warning mk/mpi.mk: still no mpicc after tools/install-deps.sh (exit $(MPI_INSTALL_RC)): building without MPI; `make mpi-deps` retries)
endif
endif
endif
ifneq ($(MPICC),)
ifeq ($(origin CC),command line)
$(warning mk/mpi.mk: CC=$(CC) given on the command line: building without MPI (OMPI_CC=$(CC) with mpicc keeps it))
else
MPI_MODE := on
CC := mpicc
CFLAGS += -DRECLF_MPI
endif
endif
endif
endif

# runtime/dist.c is the only file that includes mpi.h: a stamp named after the mode makes it (and
# so bin/reclf, and the sanitizer builds' copies) rebuild when the mode changes
MPI_STAMP := build/.mpi-mode-$(MPI_MODE)
$(MPI_STAMP):
	@mkdir -p build && rm -f build/.mpi-mode-* && touch $@
build/runtime/dist.o build-asan/runtime/dist.o build-vg/runtime/dist.o: $(MPI_STAMP)

.PHONY: test-mpi mpi-deps
# installs OpenMPI by hand (e.g. after a failed first try)
mpi-deps:
	@RECLF_EXTRA_DEPS="$(MPI_DEPS)" tools/install-deps.sh

test-mpi: all
	@echo "== tests/mpi/run.sh (MPI build: $(MPI_MODE))"
	@tests/mpi/run.sh $(CURDIR)/bin/reclf

EXTRA_TESTS += test-mpi
