#!/bin/sh
# tests/abi/abi_gate.sh - is a library compatible with a released ABI baseline?
# (docs/abi.md; `make check-abi-baseline` and tests/abi/gate_test.sh run this.)
#
#   sh tests/abi/abi_gate.sh BASELINE.abi LIB.so HEADERS_DIR
#
# BASELINE.abi and BASELINE.enums are written by tests/abi/abi_baseline.sh. Exit 0: all
# that the baseline released is still there, unchanged (additions are fine); 1: something
# released was removed or changed; 2: the check could not run. Three checks:
#
# 1. abidiff, the baseline against LIB.so, with the private types dropped on LIB.so's
#    side (--headers-dir2 HEADERS_DIR --drop-private-types; the baseline had them
#    dropped when it was written, and libabigail 2.2 asserts when --drop-private-types
#    meets an ABIXML file given --headers-dir1, so none is given) and additions not
#    reported (--no-added-syms). Its exit status is a bit field (man abidiff):
#      1 ABIDIFF_ERROR (2, ABIDIFF_USAGE_ERROR, comes with it): no comparison was made;
#      4 ABIDIFF_ABI_CHANGE: a released function's type, or a type it reaches (an enum's
#        values, a typedef, a callback's type), differs, or the SONAME does;
#      8 ABIDIFF_ABI_INCOMPATIBLE_CHANGE (comes with 4): a released symbol
#        (name@version) is gone: removed, or moved to another version node.
#    abidiff sets 4 without 8 for a change it cannot prove incompatible and leaves the
#    verdict to a person; with additions filtered out, what it still reports is a change
#    to something released, which this gate refuses. What abidiff's default filters
#    call harmless (an enumerator appended, a typedef renamed to the same type) leaves
#    the status 0.
# 2. No symbol added to a released version node: every exported name@version of LIB.so
#    whose version node appears in the baseline must be in the baseline. (An addition,
#    so abidiff lets it through; but a function added to LIBVIB_0 would make a program
#    that uses it start against the older library and fail at its first call, where a
#    new node makes the loader refuse it at once.)
# 3. Each "NAME VALUE" line of BASELINE.enums (if present) compiled as
#    _Static_assert((NAME) == (VALUE)) after HEADERS_DIR/*.h: an enumerator renumbered or
#    removed fails. (libvib's enums are anonymous and passed as int: abidiff cannot see
#    them from any function.)
#
# A baseline of another architecture than LIB.so's is not compared (exit 0, saying so); a
# LIB.so without debug information cannot be (exit 2).
set -u

if [ $# -ne 3 ]; then
    echo "usage: sh tests/abi/abi_gate.sh BASELINE.abi LIB.so HEADERS_DIR" >&2
    exit 2
fi
base=$1
lib=$2
hdrs=$3
CC=${CC:-cc}
name="abi-gate: $(basename "$lib") against $(basename "$base")"

command -v abidiff >/dev/null 2>&1 || {
    echo "$name: abidiff not found (Debian: apt-get install abigail-tools)" >&2
    exit 2
}
for f in "$base" "$lib"; do
    [ -f "$f" ] || { echo "$name: $f: no such file" >&2; exit 2; }
done

# Without DWARF abidiff compares bare symbol names and finds no type to differ: it would
# pass a library whose functions all changed.
if ! readelf -S "$lib" 2>/dev/null | grep -q '\.debug_info'; then
    echo "$name: cannot check: $(basename "$lib") has no debug information (build it with -g)"
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
why="" # the reasons to fail, each ending in ';'

# 1. abidiff
abidiff --no-added-syms --headers-dir2 "$hdrs" --drop-private-types \
    "$base" "$lib" > "$tmp/report" 2>&1
rc=$?
if [ $((rc & 1)) -ne 0 ]; then
    sed 's/^/  | /' "$tmp/report"
    echo "$name: abidiff could not compare (exit status $rc)"
    exit 2
fi
if grep -q '^architecture changed from' "$tmp/report"; then
    grep '^architecture changed from' "$tmp/report" | sed 's/^/  | /'
    echo "$name: skipped: the baseline describes another architecture"
    exit 0
fi
if [ -s "$tmp/report" ]; then
    sed -e '/^$/d' -e 's/^/  | /' "$tmp/report"
else
    echo "  | abidiff: no difference"
fi
if [ $((rc & 8)) -ne 0 ]; then
    why="$why a released symbol is gone, removed or moved to another version node"
    why="$why (abidiff status $rc: ABI_CHANGE + ABI_INCOMPATIBLE_CHANGE);"
elif [ $((rc & 4)) -ne 0 ]; then
    why="$why a released function, or a type it uses, changed (abidiff status $rc:"
    why="$why ABI_CHANGE);"
fi

# 2. the released version nodes: name@version of the baseline's symbols, and of LIB.so's
# defined dynamic symbols (the nodes themselves, type A, aside)
grep -o "<elf-symbol [^>]*>" "$base" |
    sed -n "s/.* name='\([^']*\)' version='\([^']*\)'.*/\1@\2/p" | sort -u > "$tmp/old"
cut -d@ -f2 "$tmp/old" | sort -u > "$tmp/nodes"
nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@@/, "@", $3); print $3 }' |
    grep '@' | sort -u > "$tmp/new"
awk -F@ 'NR == FNR { node[$1] = 1; next } ($2 in node)' "$tmp/nodes" "$tmp/new" |
    comm -13 "$tmp/old" - > "$tmp/added"
if [ -s "$tmp/added" ]; then
    echo "  | symbols added to a released version node (put them in a new node):"
    sed 's/^/  |   /' "$tmp/added"
    why="$why a symbol was added to a released version node;"
elif [ -s "$tmp/nodes" ]; then
    echo "  | version nodes $(paste -sd' ' "$tmp/nodes"): no symbol added"
fi

# 3. the enumerators
enums=${base%.abi}.enums
if [ -f "$enums" ]; then
    ename=$(basename "$enums")
    {
        for h in "$hdrs"/*.h; do echo "#include \"$(basename "$h")\""; done
        while read -r n v; do
            echo "_Static_assert(($n) == ($v), \"$n was $v in $ename\");"
        done < "$enums"
    } > "$tmp/enums.c"
    if $CC -std=c11 -fsyntax-only -I"$hdrs" "$tmp/enums.c" > "$tmp/cc" 2>&1; then
        echo "  | enumerators: all $(wc -l < "$enums") of $ename keep their values"
    else
        grep 'error' "$tmp/cc" | sed -e 's/^[^ ]*enums\.c:[0-9:]* //' -e 's/^/  | /'
        why="$why a released enumerator was renumbered or removed;"
    fi
fi

if [ -n "$why" ]; then
    echo "$name: FAIL:${why%;}"
    exit 1
fi
echo "$name: compatible"
