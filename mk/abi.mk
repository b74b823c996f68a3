# mk/abi.mk - the ABI gate against the released baselines (docs/abi.md). Included by the
# Makefile after its own rules (it uses MAJOR, VERSION, SONAME and SHLIB, and must not
# provide the default goal).
#
#   make check-abi-baseline   the gate's own test (tests/abi/gate_test.sh: known breaks
#                             refused, additions passed), then $(SHLIB) against every
#                             baseline abi/libvib-$(MAJOR).*.abi: a released function,
#                             symbol version or enumerator removed or changed fails;
#                             additions pass. Skipped, saying so, without abidiff.
#   make abi-baseline         at a release's commit: write abi/libvib-$(VERSION).abi and
#                             .enums from this tree's build (tests/abi/abi_baseline.sh)

# The releases that share this SONAME: a new major starts with none.
ABI_BASELINES = $(sort $(wildcard abi/libvib-$(MAJOR).*.abi))

.PHONY: check-abi-baseline abi-baseline

check-abi-baseline: lib
	@for t in abidiff abidw; do if ! command -v $$t >/dev/null 2>&1; then \
	  echo "check-abi-baseline: $$t not found, skipped: the ABI is NOT compared with abi/ (Debian: apt-get install abigail-tools)"; \
	  exit 0; fi; done; \
	CC='$(CC)' sh tests/abi/gate_test.sh || exit 1; \
	if [ -z "$(ABI_BASELINES)" ]; then \
	  echo "check-abi-baseline: no baseline of $(SONAME) in abi/ yet (the first release of a major has none)"; \
	  exit 0; fi; \
	fail=0; for b in $(ABI_BASELINES); do \
	  CC='$(CC)' sh tests/abi/abi_gate.sh $$b $(SHLIB) include || fail=1; done; \
	exit $$fail

abi-baseline: lib
	@if [ -e abi/libvib-$(VERSION).abi ]; then \
	  echo "abi-baseline: abi/libvib-$(VERSION).abi exists; a released baseline never changes (remove it by hand if it was never released)"; \
	  exit 1; fi
	CC='$(CC)' sh tests/abi/abi_baseline.sh $(SHLIB) include abi/libvib-$(VERSION)
