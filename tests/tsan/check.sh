#!/bin/sh
# check.sh - make check-tsan's runs (mk/sanitizers.mk builds what they need first).
#
#   TSAN_CC=clang TSAN_LIB_FLAGS='...' TSAN_LINK='...' sh tests/tsan/check.sh
#
# 1. build/tsan/tsan_test, libvib built with ThreadSanitizer and LLVM's OpenMP
#    (libomp), at 2 threads with 4 workers and at 3 threads (uneven shares, more threads
#    than cores) with 2 workers. It must exit
#    0 without any report, and Archer (libomp's TSan tool, libarcher.so, which tells
#    TSan about OpenMP's barriers, locks and tasks) must have said it is active: without
#    it every OpenMP pass would be reported (libomp itself is not instrumented).
# 2. The harness catches races: each race planted below (in a copy of one lib/ file,
#    compiled with the same flags and linked ahead of the TSan library) must end the
#    test with TSan's exit code 66 and a report naming that file. A plant that no
#    longer applies to the source is an error, so the demonstration cannot rot.
#
# TSAN_CC       the compiler (clang)
# TSAN_LIB_FLAGS  the flags lib/*.c are compiled with for TSan (-fsanitize=thread, ...)
# TSAN_LINK     the link line after the objects (TSan, OpenMP, BLIS, zlib, libm)
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${TSAN_CC:=clang}" "${TSAN_LIB_FLAGS:?}" "${TSAN_LINK:?}"
bin=build/tsan/tsan_test
lib=build/tsan/libvib-tsan.a
out=build/tsan/out
mkdir -p "$out"

# halt_on_error + exitcode: the first report ends the run with 66. The suppressions
# cover the interceptors called from inside libomp and libblis only (tsan.supp says why).
# LLVM 14's TSan cannot map its shadow memory under a kernel that randomizes mmap with
# 32 bits (vm.mmap_rnd_bits, common on newer hosts): run without address randomization.
norandom=""
if command -v setarch >/dev/null 2>&1 && setarch "$(uname -m)" -R true 2>/dev/null; then
    norandom="setarch $(uname -m) -R"
fi
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 history_size=4 suppressions=$PWD/tests/tsan/tsan.supp"
export ARCHER_OPTIONS="verbose=1"
# Archer, from the directory of the libomp the test loads, named explicitly (libomp
# would also find it there by itself).
omp=$(ldd "$bin" | awk '$1 ~ /^libomp\.so/ {print $3}')
archer=$(dirname "$(readlink -f "${omp:-/nonexistent}")")/libarcher.so
if [ ! -e "$archer" ]; then
    echo "check-tsan: no libarcher.so beside libomp (${omp:-not linked}): apt-get install libomp-dev"
    exit 1
fi
export OMP_TOOL_LIBRARIES="$archer"
failures=0

# 1. the real code: clean, and the results asserted by the test itself
for tw in "2 4" "3 2"; do
    # shellcheck disable=SC2086 # two numbers, split on purpose
    set -- $tw
    log="$out/clean-$1-threads.log"
    start=$(date +%s)
    $norandom "$bin" --threads "$1" --workers "$2" > "$log" 2>&1
    status=$?
    secs=$(($(date +%s) - start))
    if [ "$status" -ne 0 ] || grep -q 'ThreadSanitizer' "$log"; then
        echo "check-tsan: $1 threads, $2 workers: FAILED (exit $status), log $log:"
        sed 's/^/  | /' "$log"
        failures=$((failures + 1))
    elif ! grep -q 'Archer detected OpenMP application with TSan' "$log"; then
        echo "check-tsan: $1 threads, $2 workers: Archer did not start ($archer): the run proves nothing"
        sed 's/^/  | /' "$log"
        failures=$((failures + 1))
    else
        grep '^tsan_test:' "$log" | sed 's/^/check-tsan: /'
        echo "check-tsan: $1 threads, $2 workers: no report, Archer active, ${secs}s"
    fi
done

# 2. planted races: NAME FILE SED [GREP]: FILE edited by SED must draw a report naming it
plant() {
    name=$1 file=$2 edit=$3
    dir="$out/plant-$name"
    mkdir -p "$dir"
    sed "$edit" "lib/$file" > "$dir/$file"
    if cmp -s "lib/$file" "$dir/$file"; then
        echo "check-tsan: plant $name: '$edit' no longer changes lib/$file: update tests/tsan/check.sh"
        failures=$((failures + 1))
        return
    fi
    # shellcheck disable=SC2086 # flag lists
    if ! $TSAN_CC $TSAN_LIB_FLAGS -Ilib -c "$dir/$file" -o "$dir/planted.o" 2> "$dir/cc.log" ||
        ! $TSAN_CC "$dir/planted.o" build/tsan/tsan_test.o "$lib" $TSAN_LINK \
            -o "$dir/tsan_test" 2>> "$dir/cc.log"; then
        echo "check-tsan: plant $name: does not build:"
        sed 's/^/  | /' "$dir/cc.log"
        failures=$((failures + 1))
        return
    fi
    $norandom "$dir/tsan_test" --threads 2 --workers 4 > "$dir/run.log" 2>&1
    status=$?
    if [ "$status" -eq 66 ] && grep -q 'WARNING: ThreadSanitizer: data race' "$dir/run.log" &&
        grep -q "$dir/$file:[0-9]" "$dir/run.log"; then
        # the first frame in the planted file: "function file:line"
        line=$(grep -m 1 "^ *#[0-9]* .*$dir/$file:[0-9]" "$dir/run.log" |
            sed 's/^ *#[0-9]* //; s/ (.*//; s| [^ ]*/| |')
        echo "check-tsan: plant $name: reported (exit 66): data race at ${line:-$file}"
    else
        echo "check-tsan: plant $name: NOT reported (exit $status), log $dir/run.log:"
        sed 's/^/  | /' "$dir/run.log" | head -n 60
        failures=$((failures + 1))
    fi
}

# An OpenMP pass: the optimizer's scan for max|g| with mx shared instead of reduced.
plant omp-reduction optim.c 's/^    reduction(max : mx)$/    shared(mx)/'
# An OpenMP pass: every thread of the Gaussian head writing its KL share into part[0].
plant omp-head-share model_head.c 's/part\[omp_get_thread_num()\] = diag_forward_rows/part[0] = diag_forward_rows/'
# Distinct handles in distinct threads: the error detail process-wide, not per thread.
plant thread-local-error status.c 's/^static _Thread_local char last_error/static char last_error/'

if [ "$failures" -ne 0 ]; then
    echo "check-tsan: $failures failed"
    exit 1
fi
echo "check-tsan: the real code ran clean; every planted race was reported"
