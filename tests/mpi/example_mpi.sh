#!/bin/sh
# example_mpi.sh - examples/train_mnist_mpi under mpirun (make check-mpi): 2 ranks train
# with the reduction overlapped (--overlap); and a rank given a data path it cannot read
# stops every rank, each saying which rank failed and why, with status 1 and no hang
# (mpirun's MPMD form gives rank 1 its own --data; a timeout catches a hang).
#
# Needs make mpi; MPIRUN and MPIRUN_FLAGS as the Makefile passes them. The data are tiny
# synthetic IDX files written here.
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${MPIRUN:=mpirun}" "${MPIRUN_FLAGS:=--allow-run-as-root --oversubscribe}"
prog=examples/train_mnist_mpi
[ -x "$prog" ] || { echo "example_mpi: $prog is not built (make mpi)"; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0
. tests/idx_synth.sh

images "$tmp/train-images-idx3-ubyte" 20
labels "$tmp/train-labels-idx1-ubyte" 20
images "$tmp/t10k-images-idx3-ubyte" 5
labels "$tmp/t10k-labels-idx1-ubyte" 5
tiny="--epochs 2 --hidden 4 --latent 2 --batch 6 --samples 1 --ema 0 --threads 1"

# run NAME CMD...: CMD under timeout 60, its status in $got, output in $tmp/out, $tmp/err.
run() {
    name=$1
    shift
    timeout 60 "$@" > "$tmp/out" 2> "$tmp/err"
    got=$?
    if [ "$got" -eq 124 ]; then
        echo "example_mpi: $name: still running after 60 s (a hang)"
        failures=$((failures + 1))
        return 1
    fi
}
fail() {
    echo "example_mpi: $name: $1"
    sed 's/^/  | /' "$tmp/out" "$tmp/err"
    failures=$((failures + 1))
}

# shellcheck disable=SC2086 # the options are lists
if run "2 ranks, --overlap" $MPIRUN $MPIRUN_FLAGS -np 2 $prog --data "$tmp" $tiny --overlap \
    --csv "$tmp/r.csv" --plot "$tmp/r.png"; then
    if [ "$got" -ne 0 ]; then fail "exit status $got, expected 0"
    elif ! grep -q "overlapped with the backward pass" "$tmp/out"; then fail "no word of the overlap"
    elif grep -q "(null)" "$tmp/err"; then fail "a rank other than 0 tried to plot"
    else echo "example_mpi: $name: ok"; fi
fi

# shellcheck disable=SC2086
if run "rank 1 without its data" $MPIRUN $MPIRUN_FLAGS \
    -np 1 $prog --data "$tmp" $tiny --csv "$tmp/r.csv" --plot "$tmp/r.png" : \
    -np 1 $prog --data "$tmp/missing" $tiny --csv "$tmp/r.csv" --plot "$tmp/r.png"; then
    if [ "$got" -ne 1 ]; then fail "exit status $got, expected 1"
    else
        ok=1
        for r in 0 1; do # every rank names rank 1 and its path
            grep "^train_mnist (rank $r): the data: rank 1: " "$tmp/err" | grep -qF "$tmp/missing" ||
                { fail "rank $r does not say that rank 1 cannot read $tmp/missing"; ok=0; }
        done
        [ "$ok" -eq 1 ] && echo "example_mpi: $name: every rank stopped with its reason: ok"
    fi
fi

[ "$failures" -eq 0 ] || { echo "example_mpi: $failures failed"; exit 1; }
echo "example_mpi: all passed"
