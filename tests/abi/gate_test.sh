#!/bin/sh
# tests/abi/gate_test.sh - the ABI gate on libraries whose changes are known: it must
# refuse each break and let each addition through (docs/abi.md).
#
#   sh tests/abi/gate_test.sh [-v]    (make check-abi-baseline runs it)
#
# Builds the throw-away library of tests/abi/v1 (demo.h, demo.c, demo.map) with -g,
# writes its baseline with tests/abi/abi_baseline.sh, then builds each variant (a copy of
# v1 with one small edit, made below in variant(); only v1 is stored) and runs
# tests/abi/abi_gate.sh on it, the very script make check-abi-baseline runs on libvib:
#
#   removed   a function removed                          must fail
#   param     a parameter's type changed (float -> double) must fail
#   enumval   a named enum's value changed                must fail
#   constval  an anonymous enum's value changed           must fail (libvib's status codes)
#   moved     a released function moved to a new node      must fail
#   addold    a function added to the released node        must fail
#   added     a function added under a new node           must pass
#   enumadd   enumerators appended to both enums          must pass
#   v1        the baseline's own library                  must pass
#   nodebug   v1 built without -g                         must be refused as uncheckable
#
# One line per case (the gate's verdict), or with -v the gate's whole output; the whole
# output too for a case that does not come out as it must. Skipped (exit 0, saying so)
# without abidiff and abidw. About a second.
set -u

verbose=0
[ "${1:-}" = -v ] && verbose=1

here=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}

for t in abidiff abidw; do
    if ! command -v $t >/dev/null 2>&1; then
        echo "gate_test: $t not found, skipped (Debian: apt-get install abigail-tools)"
        exit 0
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# edit FILE SCRIPT: run the sed SCRIPT on $out/FILE. append FILE: add stdin to its end.
# Each must change the file: if v1 no longer has what an edit expects, the variant would
# silently be v1 again and its verdict meaningless, so the test stops there instead.
edit() {
    sed -e "$2" "$out/$1" > "$out/$1.new" || {
        printf 'gate_test: FAIL: variant %s: sed could not run on %s: %s\n' "$v" "$1" "$2"
        exit 2
    }
    changed "$1" "sed '$2'"
}
append() {
    cat "$out/$1" - > "$out/$1.new"
    changed "$1" "appending"
}
changed() {
    if cmp -s "$out/$1" "$out/$1.new"; then
        # printf, not echo: the sed scripts hold backslashes
        printf 'gate_test: FAIL: variant %s: %s changed nothing in %s\n' "$v" "$2" "$1"
        echo "gate_test: tests/abi/v1 no longer has what it edits: update variant()"
        exit 2
    fi
    mv "$out/$1.new" "$out/$1"
}

# add_resize: declare and define demo_ctx_resize (which demo.map's DEMO_1 { demo_*; }
# exports under DEMO_1 unless a later node names it)
add_resize() {
    edit include/demo.h '/^#endif$/i\
/* Added in version 2. */\
int demo_ctx_resize(demo_ctx *ctx, int size);\
'
    append demo.c <<'EOF'

int demo_ctx_resize(demo_ctx *ctx, int size)
{
    if (ctx == NULL)
        return DEMO_ERR_ARG;
    ctx->size = size;
    return DEMO_OK;
}
EOF
}

# variant VARIANT: turn the copy of v1 in $out into VARIANT. Edits keep the line numbers
# that the gate's report (-v) cites where they can.
variant() {
    case $1 in
    removed)
        # demo_ctx_size gone from header and source: a program calling it no longer
        # loads. Must fail (abidiff: a released symbol removed).
        edit include/demo.h '/^int demo_ctx_size(/d'
        edit demo.c '/^int demo_ctx_size(/,/^$/d' # the definition, the blank line after
        ;;
    param)
        # demo_scale's k becomes a double: a program built against v1 passes a float
        # where the library reads a double. Must fail (abidiff: a released function's
        # type changed).
        edit include/demo.h 's/^\(int demo_scale(.*\), float k)/\1, double k)/'
        edit demo.c 's/^\(int demo_scale(.*\), float k)/\1, double k)/'
        edit demo.c 's/x\[i\] \*= k;/x[i] = (float)(x[i] * k);/'
        ;;
    enumval)
        # DEMO_YELLOW inserted before DEMO_BLUE, which moves from 2 to 3 in a named enum
        # a function takes. Must fail (abidiff sees it, and so does the .enums check).
        edit include/demo.h 's/DEMO_GREEN, DEMO_BLUE };/DEMO_GREEN, DEMO_YELLOW, DEMO_BLUE };/'
        ;;
    constval)
        # DEMO_ERR_IO renumbered from -2 to -3 in the anonymous enum (as libvib's status
        # codes are): no function's type reaches it. Must fail (the .enums check sees it).
        edit include/demo.h 's/DEMO_ERR_IO = -2 };/DEMO_ERR_IO = -3 };/'
        ;;
    moved)
        # demo_ctx_size, released under DEMO_1, named in a new node DEMO_2, so a program
        # linked against v1 (asking for demo_ctx_size@DEMO_1) no longer finds it. Sources
        # as v1's. Must fail (abidiff: a released symbol gone).
        append demo.map <<'EOF'

DEMO_2 {
    global:
        demo_ctx_size;
} DEMO_1;
EOF
        ;;
    addold)
        # demo_ctx_resize added but left in the released node DEMO_1 (by its wildcard):
        # a program using it would start against v1 and fail at its first call. Must fail
        # (the gate's released-nodes check; abidiff counts it an addition).
        add_resize
        ;;
    added)
        # demo_ctx_resize added under a new node DEMO_2, as additions must be. Must pass.
        add_resize
        append demo.map <<'EOF'

DEMO_2 {
    global:
        demo_ctx_resize;
} DEMO_1;
EOF
        ;;
    enumadd)
        # an enumerator appended to each enum: no released value changes. Must pass.
        edit include/demo.h 's/DEMO_ERR_IO = -2 };/DEMO_ERR_IO = -2, DEMO_ERR_NOMEM = -3 };/'
        edit include/demo.h 's/DEMO_GREEN, DEMO_BLUE };/DEMO_GREEN, DEMO_BLUE, DEMO_ALPHA };/'
        ;;
    v1 | nodebug) ;; # v1 itself (nodebug: built without -g, see the loop below)
    *)
        echo "gate_test: no variant $1"
        exit 2
        ;;
    esac
}

# build VARIANT [DEBUG]: $tmp/VARIANT/libdemo.so.1 (with -g, or DEBUG) from a copy of v1
# made into VARIANT, and its public header dir $tmp/VARIANT/include
build() {
    v=$1
    debug=${2:--g}
    out=$tmp/$v
    mkdir -p "$out/include"
    cp "$here/v1/demo.h" "$out/include/demo.h"
    cp "$here/v1/demo.c" "$here/v1/demo.map" "$out/"
    variant "$v"
    # Built from inside $out with relative paths, as libvib is from its tree's root.
    (cd "$out" && $CC -std=c11 "$debug" -O2 -fPIC -shared -Iinclude -Wl,-soname,libdemo.so.1 \
        -Wl,--version-script=demo.map -o libdemo.so.1 demo.c) || {
        echo "gate_test: could not build variant $v"
        exit 2
    }
}

build v1
(cd "$tmp/v1" && sh "$here/abi_baseline.sh" libdemo.so.1 include "$tmp/demo-1") > "$tmp/log" 2>&1 || {
    cat "$tmp/log"
    echo "gate_test: FAIL: could not write the baseline"
    exit 1
}

bad=0
for case in removed:fail param:fail enumval:fail constval:fail moved:fail addold:fail \
    added:pass enumadd:pass v1:pass nodebug:error; do
    v=${case%:*}
    want=${case#*:}
    case $v in
    v1) ;;
    nodebug) build nodebug -g0 ;;
    *) build "$v" ;;
    esac
    (cd "$tmp/$v" && sh "$here/abi_gate.sh" "$tmp/demo-1.abi" libdemo.so.1 include) \
        > "$tmp/$v.out" 2>&1
    rc=$?
    case $rc in
    0) got=pass ;;
    1) got=fail ;;
    2) got=error ;;
    *) got="exit $rc" ;;
    esac
    if [ "$got" = "$want" ]; then
        echo "gate_test: $v: $got, as it must: $(tail -n 1 "$tmp/$v.out" | sed 's/^[^:]*: [^:]*: //')"
        [ $verbose -eq 0 ] || sed -e '$d' -e '/^  | Variables changes summary: 0 Removed, 0 Changed, 0 Added/d' \
            -e 's/^/    /' "$tmp/$v.out"
    else
        echo "gate_test: FAIL: $v: $got, expected $want. The gate's output:"
        sed 's/^/    /' "$tmp/$v.out"
        bad=1
    fi
done

if [ $bad -ne 0 ]; then
    echo "gate_test: FAIL"
    exit 1
fi
echo "gate_test: the gate refuses the 6 breaks, passes the 2 additions and the baseline\
 itself, and refuses to judge a library without debug information"
