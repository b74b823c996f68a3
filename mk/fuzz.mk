# mk/fuzz.mk - the libFuzzer targets of tests/fuzz/ (docs/reliability.md). Included by
# the Makefile after its own rules.
#
#   make fuzz [FUZZ_SECONDS=60]   build every target (clang, ASan + UBSan) and run each
#                                 for FUZZ_SECONDS, starting from its committed seeds
#                                 (tests/fuzz/corpus/<target>) plus what earlier runs
#                                 found (build/fuzz/corpus/<target>); a crash or a failed
#                                 oracle stops it, the input saved as
#                                 build/fuzz/crash-<target>-*. Part of make check.
#
# libvib is compiled a second time for them, with clang and the fuzzer's coverage
# instrumentation; OpenMP through clang's runtime (libomp).

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := idx model checkpoint options options_sweep options_latent options_robustness
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -O1 -g $(FUZZ_SAN) -Iinclude -Ilib $(BLIS_CFLAGS) -fopenmp \
                -Wno-pass-failed
FUZZ_OBJS    := $(SRCS:lib/%.c=build/fuzz/lib/%.o)
# libFuzzer links (libclang-rt) and omp.h is there (libomp-dev): a target builds
HAVE_FUZZ    := $(shell printf '#include <omp.h>\nint LLVMFuzzerTestOneInput(const char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return omp_get_max_threads() < 0; }\n' | \
                  $(FUZZ_CC) -fsanitize=fuzzer -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)

.PHONY: fuzz check-fuzz
.SECONDARY: $(FUZZ_OBJS)

build/fuzz/lib/%.o: lib/%.c $(HDRS) | have-blis
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -DVIB_BUILDING_LIBRARY \
	  -fno-math-errno -ffp-contract=off -c $< -o $@

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h tests/fuzz/fuzz_options.h \
  $(FUZZ_OBJS) $(wildcard examples/*.c) examples/example_util.h
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iexamples -fsanitize=fuzzer $< $(FUZZ_OBJS) -o $@ \
	  $(BLIS_LIBS) -lz -lm

ifeq ($(HAVE_FUZZ),yes)
fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  ./build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -close_fd_mask=3 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/crash-$$t- build/fuzz/corpus/$$t tests/fuzz/corpus/$$t \
	    > build/fuzz/$$t.log 2>&1; rc=$$?; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' build/fuzz/$$t.log); \
	  if [ $$rc -ne 0 ]; then grep -E 'fuzz oracle|ERROR|runtime error|SUMMARY' build/fuzz/$$t.log | head -5; \
	    echo "fuzz: $$t FAILED after $$runs runs (build/fuzz/$$t.log; the input: build/fuzz/crash-$$t-*)"; exit 1; fi; \
	  echo "fuzz: $$t: $$runs runs, no crash, every oracle held"; done
else
fuzz:
	@echo "fuzz: $(FUZZ_CC) with libFuzzer and LLVM's OpenMP not found (sh .ci/deps test; Debian: apt-get install clang libclang-rt-14-dev libomp-14-dev)"; exit 1
endif

check-fuzz: fuzz
