#!/bin/sh
# examples_labels.sh - the example programs refuse data whose labels the model has no
# class for: a test set holding a label 12 for a 10-class model is named item by item
# and ends the program with status 1, instead of being scored as plain errors. And
# train_mnist's --checkpoint / --resume: 2 epochs, then resumed to 3, save the same
# model, byte for byte, as 3 epochs in one run. And a run that diverges says where, and
# that the last good step stands, and exits 1.
#
# Needs the examples built (make examples); run from anywhere. The data are tiny
# synthetic IDX files written here, so no MNIST download is needed.
set -u
cd "$(dirname "$0")/.." || exit 1
for p in examples/train_mnist examples/beta_sweep examples/robustness; do
    if [ ! -x "$p" ]; then
        echo "examples_labels: $p is not built (make examples)"
        exit 1
    fi
done
tmp=$(mktemp -d) || exit 1
trap 'chmod -R u+w "$tmp" 2> /dev/null; rm -rf "$tmp"' EXIT
failures=0

. tests/idx_synth.sh

# expect NAME STATUS MESSAGE CMD...: CMD exits with STATUS and, if MESSAGE is not empty,
# prints it on stderr.
expect() {
    name=$1 want=$2 msg=$3
    shift 3
    "$@" > "$tmp/out" 2> "$tmp/err"
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "examples_labels: $name: exit status $got, expected $want"
        sed 's/^/  | /' "$tmp/err"
        failures=$((failures + 1))
    elif [ -n "$msg" ] && ! grep -qF -- "$msg" "$tmp/err"; then
        echo "examples_labels: $name: stderr lacks '$msg'"
        sed 's/^/  | /' "$tmp/err"
        failures=$((failures + 1))
    else
        echo "examples_labels: $name: ok"
    fi
}

# train_mnist: 20 training images (labels 0-9: a 10-class model), 5 test images.
mkdir -p "$tmp/clean" "$tmp/bad"
images "$tmp/clean/train-images-idx3-ubyte" 20
labels "$tmp/clean/train-labels-idx1-ubyte" 20
images "$tmp/clean/t10k-images-idx3-ubyte" 5
labels "$tmp/clean/t10k-labels-idx1-ubyte" 5
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte; do
    ln -s "$tmp/clean/$f" "$tmp/bad/$f"
done
labels "$tmp/bad/t10k-labels-idx1-ubyte" 5 1=12
tiny="--epochs 1 --hidden 4 --latent 2 --batch 10 --samples 1 --ema 0 --threads 1"
# shellcheck disable=SC2086 # $tiny is a list of options
expect "train_mnist, clean test set" 0 "" examples/train_mnist --data "$tmp/clean" $tiny \
    --csv "$tmp/clean.csv" --plot "$tmp/clean.png"
# shellcheck disable=SC2086
expect "train_mnist, test label 12" 1 \
    "train_mnist: test set item 1: label 12 is outside the model's 10 classes" \
    examples/train_mnist --data "$tmp/bad" $tiny --csv "$tmp/bad.csv" --plot "$tmp/bad.png"

# beta_sweep: 60,000 training images (labels 0-9: 10-class models; it needs 50,000 to
# train and 10,000 to validate) and the 5 test images holding a 12.
mkdir -p "$tmp/sweep"
images "$tmp/sweep/train-images-idx3-ubyte" 60000
labels "$tmp/sweep/train-labels-idx1-ubyte" 60000
ln -s "$tmp/clean/t10k-images-idx3-ubyte" "$tmp/sweep/t10k-images-idx3-ubyte"
ln -s "$tmp/bad/t10k-labels-idx1-ubyte" "$tmp/sweep/t10k-labels-idx1-ubyte"
expect "beta_sweep, test label 12" 1 \
    "beta_sweep: test set item 1: label 12 is outside the model's 10 classes" \
    examples/beta_sweep --data "$tmp/sweep" --betas 1 --epochs 1 --train-limit 100 \
    --samples 1 --threads 1 --csv "$tmp/sweep.csv" --error-plot "$tmp/e.png" \
    --plane-plot "$tmp/p.png"

# beta_sweep --state: a sweep of 2 betas x 2 seeds stopped by --time-limit 0 after every
# epoch (exit status 3, the state saved) and run again until it ends gives the runs of the
# same sweep without --state, number for number (all but the seconds); run once more it
# trains nothing; another recipe in the same directory is refused.
mkdir -p "$tmp/sweep_ok"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte; do
    ln -s "$tmp/sweep/$f" "$tmp/sweep_ok/$f"
done
ln -s "$tmp/clean/t10k-images-idx3-ubyte" "$tmp/sweep_ok/t10k-images-idx3-ubyte"
ln -s "$tmp/clean/t10k-labels-idx1-ubyte" "$tmp/sweep_ok/t10k-labels-idx1-ubyte"
sw="--data $tmp/sweep_ok --betas 1e-3,1e-1 --seeds 1:2 --epochs 3 --train-limit 200 --samples 2
    --threads 1 --error-plot $tmp/e.png --plane-plot $tmp/p.png"
# shellcheck disable=SC2086 # $sw is a list of options
expect "beta_sweep, 2 betas x 2 seeds" 0 "" examples/beta_sweep $sw --csv "$tmp/sw_a.csv" \
    --summary "$tmp/sw_as.csv"
stops=0
while :; do
    # shellcheck disable=SC2086
    examples/beta_sweep $sw --state "$tmp/sw_state" --time-limit 0 --csv "$tmp/sw_b.csv" \
        --summary "$tmp/sw_bs.csv" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ "$rc" -eq 3 ] && [ "$stops" -lt 20 ] || break
    stops=$((stops + 1))
done
if [ "$rc" -ne 0 ] || [ "$stops" -ne 11 ]; then
    echo "examples_labels: beta_sweep --time-limit 0: exit $rc after $stops stops, expected 0 after 11"
    sed 's/^/  | /' "$tmp/err"
    failures=$((failures + 1))
elif ! cut -d, -f1-10,12 "$tmp/sw_a.csv" > "$tmp/sw_a.cut" ||
     ! cut -d, -f1-10,12 "$tmp/sw_b.csv" > "$tmp/sw_b.cut" ||
     ! cmp -s "$tmp/sw_a.cut" "$tmp/sw_b.cut" || [ "$(wc -l < "$tmp/sw_a.cut")" -ne 5 ]; then
    echo "examples_labels: beta_sweep resumed 11 times gave other runs than in one go"
    failures=$((failures + 1))
elif [ "$(grep -c '^result.*finished before' "$tmp/out")" -ne 3 ] ||
     [ "$(wc -l < "$tmp/sw_bs.csv")" -ne 3 ] || ! grep -q '^0.001,-3.0000,2,' "$tmp/sw_bs.csv"; then
    echo "examples_labels: beta_sweep's last resumed call or its summary is not as expected"
    failures=$((failures + 1))
else
    echo "examples_labels: beta_sweep stopped after each of 12 epochs and resumed: the same runs: ok"
fi
# shellcheck disable=SC2086
expect "beta_sweep --state, run again: nothing trained" 0 "" examples/beta_sweep $sw \
    --state "$tmp/sw_state" --csv "$tmp/sw_c.csv" --summary "$tmp/sw_cs.csv"
if [ "$(grep -c 'finished before' "$tmp/out")" -ne 4 ] || grep -q 'epoch' "$tmp/err" ||
   ! cmp -s "$tmp/sw_b.csv" "$tmp/sw_c.csv"; then
    echo "examples_labels: beta_sweep trained again what its state holds"
    failures=$((failures + 1))
fi
# shellcheck disable=SC2086
expect "beta_sweep --state, another recipe" 1 "holds runs of another recipe" \
    examples/beta_sweep $sw --epochs 4 --state "$tmp/sw_state" --csv "$tmp/sw_d.csv" \
    --summary "$tmp/sw_ds.csv"
# beta_sweep --state on a DIR it may not write: a finished sweep still gathers, from a
# read-only copy of the state, the same table. Root ignores permission bits, so as root
# the copy runs as nobody (setpriv, util-linux), and the program and its library are
# copied under $tmp, opened to nobody: the checkout may be where nobody may not enter.
mkdir -p "$tmp/ro/examples" "$tmp/ro/lib" "$tmp/ro/out"
cp examples/beta_sweep "$tmp/ro/examples/" && cp -P lib/libvib.so* "$tmp/ro/lib/" &&
    cp -R "$tmp/sw_state" "$tmp/ro/state" && chmod -R a-w "$tmp/ro/state" &&
    chmod 777 "$tmp/ro/out" || exit 1
as_user=""
if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$tmp" && as_user="setpriv --reuid=65534 --regid=65534 --clear-groups" || exit 1
fi
# shellcheck disable=SC2086 # $as_user and $sw are lists of words
expect "beta_sweep --state, a read-only DIR gathers" 0 "" $as_user "$tmp/ro/examples/beta_sweep" \
    $sw --state "$tmp/ro/state" --csv "$tmp/ro/out/t.csv" --summary "$tmp/ro/out/s.csv" \
    --error-plot "$tmp/ro/out/e.png" --plane-plot "$tmp/ro/out/p.png"
if [ "$(grep -c 'finished before' "$tmp/out")" -ne 4 ] || ! cmp -s "$tmp/sw_b.csv" "$tmp/ro/out/t.csv" ||
   ! cmp -s "$tmp/sw_bs.csv" "$tmp/ro/out/s.csv"; then
    echo "examples_labels: beta_sweep on a read-only DIR did not gather its runs"
    failures=$((failures + 1))
elif $as_user sh -c ': > "$1/x"' sh "$tmp/ro/state" 2> /dev/null; then
    echo "examples_labels: the read-only DIR test could write DIR: it tests nothing"
    failures=$((failures + 1))
fi
# beta_sweep --state shared: a run another process holds (its lock taken by flock(1), from
# util-linux) is left out, exit status 4 and a table of the finished runs (none finished:
# no table). Then a smoke test: two processes started together on an empty DIR both
# accept it (exit 0 or 4) and a third call gathers the four runs (the window in which
# creating recipe.txt could race is microseconds wide: this shows the common case works,
# not that the race is closed; link() closes it, see check_recipe).
sw1="--data $tmp/sweep_ok --seeds 1 --epochs 1 --train-limit 200 --samples 2 --threads 1
    --error-plot $tmp/e.png --plane-plot $tmp/p.png"
mkdir -p "$tmp/sw_lock"
if command -v flock > /dev/null; then
    # shellcheck disable=SC2086
    expect "beta_sweep, every run another process's" 4 "no tables or plots" \
        flock "$tmp/sw_lock/beta0.001_seed1.lock" examples/beta_sweep $sw1 --betas 1e-3 \
        --state "$tmp/sw_lock" --csv "$tmp/sw_l1.csv" --summary "$tmp/sw_l1s.csv"
    if [ -e "$tmp/sw_l1.csv" ]; then
        echo "examples_labels: beta_sweep wrote a table of no runs"
        failures=$((failures + 1))
    fi
    # shellcheck disable=SC2086
    expect "beta_sweep, one run of two another process's" 4 "another process is training it" \
        flock "$tmp/sw_lock/beta0.001_seed1.lock" examples/beta_sweep $sw1 --betas 1e-3,1e-1 \
        --state "$tmp/sw_lock" --csv "$tmp/sw_l2.csv" --summary "$tmp/sw_l2s.csv"
    if [ "$(wc -l < "$tmp/sw_l2.csv")" -ne 2 ] || ! grep -q '^0.1,' "$tmp/sw_l2.csv"; then
        echo "examples_labels: beta_sweep's table with a run left out is not the finished run's"
        failures=$((failures + 1))
    fi
else
    echo "examples_labels: flock(1) not found (apt-get install util-linux): the runs held by another process not tested"
fi
race() { # race TAG: one of the two processes
    # shellcheck disable=SC2086
    examples/beta_sweep $sw1 --betas 1e-4,1e-3,1e-2,1e-1 --state "$tmp/sw_race" \
        --csv "$tmp/sw_r$1.csv" --summary "$tmp/sw_r$1s.csv" --error-plot "$tmp/e$1.png" \
        --plane-plot "$tmp/p$1.png" > "$tmp/race_$1.out" 2> "$tmp/race_$1.err"
}
race a &
pid_a=$!
race b &
pid_b=$!
rc_a=0 rc_b=0
wait "$pid_a" || rc_a=$?
wait "$pid_b" || rc_b=$?
# shellcheck disable=SC2086
examples/beta_sweep $sw1 --betas 1e-4,1e-3,1e-2,1e-1 --state "$tmp/sw_race" \
    --csv "$tmp/sw_rc.csv" --summary "$tmp/sw_rcs.csv" > "$tmp/out" 2> "$tmp/err"
rc_c=$?
if { [ "$rc_a" -ne 0 ] && [ "$rc_a" -ne 4 ]; } || { [ "$rc_b" -ne 0 ] && [ "$rc_b" -ne 4 ]; } ||
   [ "$rc_c" -ne 0 ] || [ "$(grep -c 'finished before' "$tmp/out")" -ne 4 ]; then
    echo "examples_labels: beta_sweep, two processes on an empty DIR: exit $rc_a and $rc_b, gathered $rc_c"
    sed 's/^/  | /' "$tmp/race_a.err" "$tmp/race_b.err" "$tmp/err"
    failures=$((failures + 1))
else
    echo "examples_labels: beta_sweep, two processes started together on an empty DIR: ok"
fi

# beta_sweep stopped inside an epoch (BETA_SWEEP_TEST_STOP_AFTER=N: a Ctrl-C after the
# process's N-th step; epochs of 200 steps, the last one 50 rows short): stopped at steps
# 26 and 56 of epoch 1 and 56 of epoch 2, then resumed to the end, the run's learning
# curve (but the seconds) and result are those of an uninterrupted run, every line
# covering its whole epoch. With the .part of the first stop removed, the resumed epoch's
# line says its means begin after step 26, and the result is still the same.
swi="--data $tmp/sweep_ok --betas 1e-3 --seeds 1 --epochs 3 --train-limit 19950 --samples 2
    --threads 1 --error-plot $tmp/e.png --plane-plot $tmp/p.png"
curve=beta0.001_seed1.csv
# shellcheck disable=SC2086
expect "beta_sweep, 3 epochs of 200 steps" 0 "" examples/beta_sweep $swi \
    --state "$tmp/swi_a" --csv "$tmp/swi_a.csv" --summary "$tmp/swi_as.csv"
# stop_at DIR N WHERE: stopped after N more steps, with WHERE in the message
stop_at() {
    # shellcheck disable=SC2086
    BETA_SWEEP_TEST_STOP_AFTER=$2 examples/beta_sweep $swi --state "$1" --csv "$tmp/x.csv" \
        --summary "$tmp/xs.csv" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    if [ "$rc" -ne 130 ] || ! grep -q "interrupted in run beta0.001_seed1 after $3 steps; state saved" "$tmp/err"; then
        echo "examples_labels: beta_sweep stopped after $2 more steps: exit $rc, not after $3 steps"
        sed 's/^/  | /' "$tmp/err"
        failures=$((failures + 1))
    fi
}
# same_run DIR CURVE_COLUMNS: DIR's run against the uninterrupted one
same_run() {
    cut -d, -f"$2" "$tmp/swi_a/$curve" > "$tmp/ca" && cut -d, -f"$2" "$1/$curve" > "$tmp/cb" &&
        cmp -s "$tmp/ca" "$tmp/cb" && [ "$(wc -l < "$tmp/cb")" -eq 4 ] &&
        cut -d, -f1-10,12 "$tmp/swi_a.csv" > "$tmp/ra" && cut -d, -f1-10,12 "$1.csv" > "$tmp/rb" &&
        cmp -s "$tmp/ra" "$tmp/rb" && [ ! -e "$1/beta0.001_seed1.part" ]
}
stop_at "$tmp/swi_b" 26 "0 epochs and 26"
stop_at "$tmp/swi_b" 30 "0 epochs and 56"
stop_at "$tmp/swi_b" 200 "1 epochs and 56"
# shellcheck disable=SC2086
expect "beta_sweep, stopped 3 times inside epochs, resumed to the end" 0 "" \
    examples/beta_sweep $swi --state "$tmp/swi_b" --csv "$tmp/swi_b.csv" --summary "$tmp/xs.csv"
if same_run "$tmp/swi_b" 1,3-; then
    echo "examples_labels: beta_sweep stopped inside epochs: the same curve and result: ok"
else
    echo "examples_labels: beta_sweep stopped inside epochs: the run differs from one in one go"
    diff "$tmp/ca" "$tmp/cb" | sed 's/^/  | /'
    failures=$((failures + 1))
fi
stop_at "$tmp/swi_c" 26 "0 epochs and 26"
rm -f "$tmp/swi_c/beta0.001_seed1.part"
stop_at "$tmp/swi_c" 30 "0 epochs and 56"
# shellcheck disable=SC2086
expect "beta_sweep, a .part lost, resumed to the end" 0 "" \
    examples/beta_sweep $swi --state "$tmp/swi_c" --csv "$tmp/swi_c.csv" --summary "$tmp/xs.csv"
cut -d, -f3 "$tmp/swi_a/$curve" > "$tmp/ce_a" && cut -d, -f3 "$tmp/swi_c/$curve" > "$tmp/ce_c"
if same_run "$tmp/swi_c" 1,5 && ! cmp -s "$tmp/ce_a" "$tmp/ce_c" &&
   [ "$(cut -d, -f6 "$tmp/swi_c/$curve" | tr '\n' ' ')" = "resumed_after_step 26 0 0 " ]; then
    echo "examples_labels: beta_sweep, a .part lost: the epoch's line says where its means begin: ok"
else
    echo "examples_labels: beta_sweep, a .part lost: the curve does not say so, or the run differs"
    sed 's/^/  | /' "$tmp/swi_c/$curve"
    failures=$((failures + 1))
fi
expect "beta_sweep, --time-limit without --state" 2 "--time-limit needs --state" \
    examples/beta_sweep --time-limit 5
expect "beta_sweep, --seed and --seeds" 2 "--seed and --seeds" \
    examples/beta_sweep --seed 1 --seeds 2,3
expect "beta_sweep, two betas named alike" 2 "are both 0.001 at 6 digits" \
    examples/beta_sweep --betas 1e-3,1.0000001e-3

# train_mnist --checkpoint, --resume: the model saved after 3 epochs in one run and after
# 2 epochs resumed to 3 are the same file (an average on, batches of 6: a short last one).
run="--data $tmp/clean --hidden 4 --latent 2 --batch 6 --samples 1 --ema 0.9 --threads 1"
# shellcheck disable=SC2086 # $run is a list of options
expect "train_mnist, 3 epochs" 0 "" examples/train_mnist $run --epochs 3 \
    --csv "$tmp/r.csv" --plot "$tmp/r.png" --save "$tmp/straight.vibm"
# shellcheck disable=SC2086
expect "train_mnist, 2 epochs with --checkpoint" 0 "" examples/train_mnist $run --epochs 2 \
    --checkpoint "$tmp/run.ckpt" --csv "$tmp/r.csv" --plot "$tmp/r.png"
# shellcheck disable=SC2086
expect "train_mnist, --resume to 3 epochs" 0 "" examples/train_mnist $run --epochs 3 \
    --resume "$tmp/run.ckpt" --csv "$tmp/r.csv" --plot "$tmp/r.png" --save "$tmp/resumed.vibm"
if cmp -s "$tmp/straight.vibm" "$tmp/resumed.vibm"; then
    echo "examples_labels: resumed and straight runs save the same model: ok"
else
    echo "examples_labels: the resumed run saved another model than the straight one"
    failures=$((failures + 1))
fi

# A size option with a minus sign after white space (strtoull reads " -4" as 2^64 - 4;
# the option fuzzer found that train_mnist took it) is refused.
expect "train_mnist, --seed ' -4'" 2 "--seed needs an integer" \
    examples/train_mnist --data "$tmp/clean" --seed " -4" --epochs 1

# A run that diverges (Adam at --lr 1e3 on 784 bright pixels: the first step's moves of
# 1e3 make the next gradient overflow the second moment) says so, and exits 1.
mkdir -p "$tmp/bright"
bright "$tmp/bright/train-images-idx3-ubyte" 20 28
ln -s "$tmp/clean/train-labels-idx1-ubyte" "$tmp/bright/train-labels-idx1-ubyte"
ln -s "$tmp/bright/train-images-idx3-ubyte" "$tmp/bright/t10k-images-idx3-ubyte"
ln -s "$tmp/clean/train-labels-idx1-ubyte" "$tmp/bright/t10k-labels-idx1-ubyte"
# With --checkpoint, the last good step's state is saved there, a file that loads.
expect "train_mnist, --lr 1e3 diverges" 1 \
    "train_mnist: the model, the optimizer's state and the average (if any) are those of the last good step" \
    examples/train_mnist --data "$tmp/bright" --lr 1e3 --hidden 64,64 --latent 4 --batch 10 \
    --epochs 30 --samples 1 --threads 1 --csv "$tmp/d.csv" --plot "$tmp/d.png" \
    --checkpoint "$tmp/d.ckpt"
grep -q "training diverged in epoch 1 at step 2 of 2" "$tmp/err" ||
    { echo "examples_labels: the divergence message does not say where"; failures=$((failures + 1)); }
grep -q "that state is saved in $tmp/d.ckpt" "$tmp/err" ||
    { echo "examples_labels: the diverged run did not save its last good state"; failures=$((failures + 1)); }
expect "train_mnist, the diverged run's saved state loads" 0 "" \
    examples/train_mnist --data "$tmp/bright" --epochs 0 --samples 1 --threads 1 \
    --load "$tmp/d.ckpt"

# robustness: every table has a line per model, attack, gradient draw count and epsilon
# (a deterministic model's attacks once, z = mu; the rate only for VIB models), every
# accuracy and rate a percentage, every AUROC a probability; --reuse loads the saved
# models, and refuses one of another kind; bad options and a missing out-of-distribution
# set are named.
rob="--data $tmp/clean --fashion $tmp/clean --hidden 4,4 --latent 2 --epochs 1 --attack-n 5
     --l2-n 4 --l2-iters 3 --l2-searches 2 --pgd-iters 2 --eps 0,0.5 --samples 2 --threads 1"
# shellcheck disable=SC2086 # $rob is a list of options
expect "robustness, tiny run" 0 "" examples/robustness $rob --out "$tmp/rob"
rows() { echo $(($(wc -l < "$tmp/rob/$1") - 1)); }
for want in "attacks.csv 28" "l2.csv 7" "ood.csv 11" "calibration.csv 60" "models.csv 4"; do
    set -- $want
    if [ "$(rows "$1")" -ne "$2" ]; then
        echo "examples_labels: robustness: $1 has $(rows "$1") lines, expected $2"
        failures=$((failures + 1))
    fi
done
awk -F, 'NR > 1 && !($7 >= 0 && $7 <= 100) { bad = 1 } END { exit bad }' "$tmp/rob/attacks.csv" &&
    awk -F, 'NR > 1 && !($4 >= 0 && $4 <= 1 && $5 >= 0 && $5 <= 1) { bad = 1 } END { exit bad }'         "$tmp/rob/ood.csv" &&
    awk -F, 'NR > 1 && $3 == "rate" && $1 == "deterministic" { bad = 1 } END { exit bad }'         "$tmp/rob/ood.csv" ||
    { echo "examples_labels: robustness: a value out of range"; failures=$((failures + 1)); }
# shellcheck disable=SC2086
expect "robustness, --reuse" 0 "" examples/robustness $rob --out "$tmp/rob" --reuse --no-ood
grep -q "vib_1e-01: loaded $tmp/rob/vib_1e-01.vibm" "$tmp/out" ||
    { echo "examples_labels: robustness --reuse did not load the models"; failures=$((failures + 1)); }
cp "$tmp/rob/deterministic.vibm" "$tmp/rob/vib_1e-02.vibm"
# shellcheck disable=SC2086
expect "robustness, --reuse of a model of another kind" 1     "robustness: $tmp/rob/vib_1e-02.vibm is not a vib_1e-02 model"     examples/robustness $rob --out "$tmp/rob" --reuse --no-ood
expect "robustness, --l2-n over --attack-n" 2 "--l2-n 9 is more than --attack-n 5"     examples/robustness --attack-n 5 --l2-n 9
expect "robustness, one width" 2 "--hidden needs two integer widths"     examples/robustness --hidden 4
# shellcheck disable=SC2086
expect "robustness, no Fashion-MNIST" 1 "apt-get install dataset-fashion-mnist"     examples/robustness $rob --out "$tmp/rob2" --fashion "$tmp/none"

[ "$failures" -eq 0 ] || { echo "examples_labels: $failures failed"; exit 1; }
echo "examples_labels: all passed"
