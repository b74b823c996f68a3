# mk/sanitizers.mk - the sanitizers beyond check-sanitize's ASan + UBSan
# (docs/reliability.md). Included by the Makefile, whose variables it uses (SRCS, HDRS,
# WARN, LIBFLAGS, OMP_FLAGS, BLIS_LIBS, AR); it leaves the default goal alone.
#
#   make check-tsan      tests/tsan/tsan_test, first on the production build, then on
#                        libvib built with ThreadSanitizer and LLVM's OpenMP runtime
#                        (clang -fopenmp=libomp) under Archer, libomp's TSan tool: the
#                        threaded passes on 2 and 3 threads against 1, and distinct
#                        handles used from 4 and 2 threads at once against each run
#                        alone; then races planted in copies of lib/ files must be
#                        reported (tests/tsan/check.sh). Needs clang and libomp-dev
#                        (libomp, libarcher.so).
#   make check-valgrind  memcheck on short training runs of examples/train_mnist on
#                        tiny synthetic data: no error, nothing definitely lost
#                        (tests/valgrind/memcheck.sh). Needs valgrind.

sanitizers_mk_goal := $(.DEFAULT_GOAL)

.PHONY: check-tsan check-valgrind

# ---- ThreadSanitizer -------------------------------------------------------------------
# GCC's libgomp is not instrumented and has no TSan annotations: under TSan its barriers
# look like no synchronization at all and every parallel region is reported. So the
# TSan build uses clang with LLVM's libomp, whose OMPT interface lets Archer hand TSan
# the happens-before edges of its barriers, locks and tasks. BLIS (libblis, built for
# libgomp) calls OpenMP through the GOMP_* ABI, which libomp also provides and, loaded
# first, serves: BLIS's threads are libomp's too. BLIS and libomp are not instrumented:
# their own accesses are not checked, only libvib's, and tests/tsan/tsan.supp mutes the
# interceptors they call (malloc, memcpy, mutexes, ...).
TSAN_CC        ?= clang
TSAN_CFLAGS    := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
TSAN_OMP       := -fopenmp=libomp
# LIBFLAGS with LLVM's OpenMP for GCC's; -Wno-pass-failed: clang notes an `omp simd`
# it could not vectorize (a hint, not a problem; GCC vectorizes it).
TSAN_LIB_FLAGS  = $(WARN) -Wno-pass-failed $(TSAN_CFLAGS) $(filter-out $(OMP_FLAGS),$(LIBFLAGS)) $(TSAN_OMP)
TSAN_LINK       = $(TSAN_CFLAGS) $(TSAN_OMP) $(BLIS_LIBS) -lz -lm -lpthread
TSAN_OBJS      := $(SRCS:lib/%.c=build/tsan/%.o)
HAVE_TSAN_CC   := $(shell command -v $(TSAN_CC) >/dev/null 2>&1 && echo yes)

build/tsan/%.o: lib/%.c $(HDRS) | have-blis
	@mkdir -p $(@D)
	$(TSAN_CC) $(TSAN_LIB_FLAGS) -c $< -o $@

build/tsan/libvib-tsan.a: $(TSAN_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

# Through the public header only, like a user program; linked to the static TSan build.
build/tsan/tsan_test.o: tests/tsan/tsan_test.c include/vib.h
	@mkdir -p $(@D)
	$(TSAN_CC) $(WARN) $(TSAN_CFLAGS) -Iinclude -c $< -o $@

build/tsan/tsan_test: build/tsan/tsan_test.o build/tsan/libvib-tsan.a
	$(TSAN_CC) $^ $(TSAN_LINK) -o $@

# The same test on the production build (GCC, libgomp, the per-CPU clones, -lvib), no
# sanitizer: its assertions alone. It found a crash clang's build hides (a NULL bias
# gradient offset per thread in vib_model_input_gradients at 2 threads, which clang's
# optimizer happens to fold back to NULL).
build/tsan/tsan_test_native: tests/tsan/tsan_test.c include/vib.h lib/libvib.so
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) -Iinclude $(LDFLAGS) $< -o $@ -Llib -lvib -pthread \
	  -Wl,-rpath,$(CURDIR)/lib

ifeq ($(HAVE_TSAN_CC),yes)
check-tsan: build/tsan/tsan_test build/tsan/tsan_test_native
	./build/tsan/tsan_test_native --threads 2 --workers 4
	@TSAN_CC='$(TSAN_CC)' TSAN_LIB_FLAGS='$(TSAN_LIB_FLAGS)' TSAN_LINK='$(TSAN_LINK)' \
	  sh tests/tsan/check.sh
else
check-tsan:
	@echo "check-tsan: $(TSAN_CC) not found (apt-get install clang libomp-dev)"; exit 1
endif

# ---- Valgrind (memcheck) ----------------------------------------------------------------
VALGRIND ?= valgrind

check-valgrind: examples
	@command -v $(VALGRIND) >/dev/null 2>&1 || { \
	  echo "check-valgrind: $(VALGRIND) not found (apt-get install valgrind)"; exit 1; }
	sh tests/valgrind/memcheck.sh $(VALGRIND)

.DEFAULT_GOAL := $(sanitizers_mk_goal)
