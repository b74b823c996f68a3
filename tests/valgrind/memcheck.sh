#!/bin/sh
# memcheck.sh - a short training run under Valgrind's memcheck (make check-valgrind).
#
# examples/train_mnist, a user program linked to the shared library, on tiny synthetic
# IDX files written here (8 x 8 images, 100 to train on, 20 to test; the training
# images gzip'd, so the inflate path runs too), four times:
#   1. 2 epochs with an average, a checkpoint after each epoch, the model saved;
#   2. resumed from the checkpoint to a third epoch, the model saved;
#   3. the saved model loaded and evaluated (--epochs 0);
#   (these three on 1 thread: a 64-32-32 model, K = 8)
#   4. 1 epoch of a 64-256 | K=256 | 256-10 model in batches of 64 on 2 threads, sizes
#      at which every threaded pass (bias/ReLU, the head, the optimizer and average)
#      runs split across OpenMP threads, and the products on 2 BLIS threads.
# Every run must end with status 0, no memcheck error and nothing definitely lost
# (--error-exitcode=99, so that a failure of train_mnist itself, status 1, stays
# distinct; --errors-for-leak-kinds=definite). Memory still reachable at exit (the
# OpenMP and BLIS runtimes') and "possibly lost" (BLIS's packing-buffer pools, held
# through pointers into their blocks) is shown in the summary line, not counted.
# No suppression file: the runs above need none. OMP_WAIT_POLICY=passive: memcheck runs
# one thread at a time, and libgomp's spinning workers would only slow it down.
# Under Valgrind the CPU shows no AVX-512 (Valgrind 3.19 lacks it), so BLIS runs its
# haswell kernels and libvib's per-CPU loops a clone other than the AVX-512 one.
#
#   sh tests/valgrind/memcheck.sh [VALGRIND]     (from anywhere; VALGRIND: valgrind)
set -u
cd "$(dirname "$0")/../.." || exit 1
vg=${1:-valgrind}
if [ ! -x examples/train_mnist ]; then
    echo "check-valgrind: examples/train_mnist is not built (make examples)"
    exit 1
fi
tmp=$(mktemp -d) || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT

. tests/idx_synth.sh

# images FILE N: N 8 x 8 images, item i showing class i mod 10 (labels' order) as a
# bright pixel column over a faint ramp.
images8() {
    f=$1 n=$2
    { printf '\000\000\010\003'; u32 "$n"; u32 8; u32 8; } > "$f"
    c=0
    while [ $c -lt 10 ]; do # one pattern per class, kept as an octal-escaped string
        pat="" p=0
        while [ $p -lt 64 ]; do
            v=$(((p * 3) % 40))
            [ $((p % 8)) -eq $c ] && v=$((v + 200))
            [ $c -ge 8 ] && [ $((p / 8)) -eq $((c - 8)) ] && v=$((v + 200))
            pat="$pat\\$(printf '%03o' "$v")"
            p=$((p + 1))
        done
        eval "pat_$c=\$pat"
        c=$((c + 1))
    done
    i=0
    while [ $i -lt "$n" ]; do
        eval "printf \"\$pat_$((i % 10))\""
        i=$((i + 1))
    done >> "$f"
}

data=$tmp/data
mkdir -p "$data"
images8 "$data/train-images-idx3-ubyte" 100
gzip -9 "$data/train-images-idx3-ubyte" # read as train-images-idx3-ubyte.gz
labels "$data/train-labels-idx1-ubyte" 100
images8 "$data/t10k-images-idx3-ubyte" 20
labels "$data/t10k-labels-idx1-ubyte" 20

vgopts="--tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --track-origins=yes --child-silent-after-fork=yes
    --num-callers=30"
common="--data $data --samples 4 --lr 0.01 --csv $tmp/run.csv --plot $tmp/run.png"
small="--hidden 32,32 --latent 8 --batch 20 --threads 1"
failures=0

# run NAME ARGS...: train_mnist under memcheck; its log in $tmp/NAME.log, summarized.
run() {
    name=$1
    shift
    start=$(date +%s)
    # shellcheck disable=SC2086 # the option lists are split on purpose
    OMP_WAIT_POLICY=passive $vg $vgopts --log-file="$tmp/$name.log" \
        examples/train_mnist $common "$@" > "$tmp/$name.out" 2>&1
    status=$?
    secs=$(($(date +%s) - start))
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$tmp/$name.log" | tail -n 1)
    lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$tmp/$name.log" | tail -n 1)
    reach=$(sed -n 's/.*still reachable: \([0-9,]*\) bytes.*/\1/p' "$tmp/$name.log" | tail -n 1)
    echo "check-valgrind: $name: exit $status, ${errors:-?} errors, definitely lost ${lost:-0} bytes, still reachable ${reach:-0} bytes, ${secs}s"
    if [ "$status" -ne 0 ] || [ "${errors:-x}" != 0 ]; then
        echo "check-valgrind: $name FAILED; train_mnist's output, then memcheck's log:"
        sed 's/^/  | /' "$tmp/$name.out"
        sed 's/^/  | /' "$tmp/$name.log"
        failures=$((failures + 1))
    fi
}

# shellcheck disable=SC2086
run "train 2 epochs" $small --epochs 2 --ema 0.9 --checkpoint "$tmp/run.ckpt" --save "$tmp/a.vibm"
# shellcheck disable=SC2086
run "resume to 3 epochs" $small --epochs 3 --ema 0.9 --resume "$tmp/run.ckpt" --save "$tmp/b.vibm"
# shellcheck disable=SC2086
run "load and evaluate" $small --epochs 0 --load "$tmp/b.vibm"
# The threaded passes: batches of 64 rows by 256 columns and 217k parameters, above
# the sizes where libvib splits a pass across threads, on 2 threads.
run "2 threads, threaded passes" --hidden 256 --latent 256 --decoder-hidden 256 --batch 64 \
    --threads 2 --epochs 1 --ema 0.9

[ "$failures" -eq 0 ] || { echo "check-valgrind: $failures run(s) failed"; exit 1; }
echo "check-valgrind: all runs clean"
