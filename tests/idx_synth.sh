# idx_synth.sh - tiny synthetic IDX files for the example tests (sourced by
# tests/examples_labels.sh and tests/mpi/example_mpi.sh; POSIX sh).

# One byte of value $1 (0-255), then a big-endian u32.
# shellcheck disable=SC2059 # the format is the byte's octal escape, on purpose
byte() { printf "\\$(printf '%03o' "$1")"; }
u32() { byte $(($1 >> 24 & 255)); byte $(($1 >> 16 & 255)); byte $(($1 >> 8 & 255)); byte $(($1 & 255)); }

# images FILE N: N images of 1 x 1 pixel (an IDX3 file of unsigned bytes), all 0.
images() {
    { printf '\000\000\010\003'; u32 "$2"; u32 1; u32 1; head -c "$2" /dev/zero; } > "$1"
}

# labels FILE N [ITEM=LABEL ...]: N labels, item i holding i mod 10, then the overrides.
labels() {
    f=$1 n=$2
    shift 2
    { printf '\000\000\010\001'; u32 "$n"; } > "$f"
    i=0
    while [ $((i + 10)) -le "$n" ]; do # printf is a builtin: no process per block
        printf '\000\001\002\003\004\005\006\007\010\011'
        i=$((i + 10))
    done >> "$f"
    while [ $i -lt "$n" ]; do
        byte $((i % 10))
        i=$((i + 1))
    done >> "$f"
    for kv in "$@"; do
        byte "${kv#*=}" | dd of="$f" bs=1 seek=$((8 + ${kv%=*})) conv=notrunc 2>/dev/null
    done
}

# bright FILE N SIDE: N images of SIDE x SIDE pixels, all 255.
bright() {
    { printf '\000\000\010\003'; u32 "$2"; u32 "$3"; u32 "$3"; head -c $(($2 * $3 * $3)) /dev/zero | tr '\0' '\377'; } > "$1"
}
