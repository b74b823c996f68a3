#!/bin/sh
# tests/abi/gate_test.sh - the ABI gate on libraries whose changes are known: it must
# refuse each break and let each addition through (docs/abi.md).
#
#   sh tests/abi/gate_test.sh [-v]    (make check-abi-baseline runs it)
#
# Builds the throw-away library of tests/abi/v1 (demo.h, demo.c, demo.map) with -g,
# writes its baseline with tests/abi/abi_baseline.sh, then builds each variant (a sibling
# directory holding only the files it changes; the others come from v1) and runs
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

# build VARIANT [DEBUG]: $tmp/VARIANT/libdemo.so.1 (with -g, or DEBUG) and its public
# header dir $tmp/VARIANT/include
build() {
    v=$1
    debug=${2:--g}
    out=$tmp/$v
    mkdir -p "$out/include"
    for f in demo.h demo.c demo.map; do
        if [ -f "$here/$v/$f" ]; then src=$here/$v/$f; else src=$here/v1/$f; fi
        case $f in
        *.h) cp "$src" "$out/include/$f" ;;
        *) cp "$src" "$out/$f" ;;
        esac
    done
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
