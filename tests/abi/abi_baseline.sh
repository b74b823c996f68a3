#!/bin/sh
# tests/abi/abi_baseline.sh - write the ABI baseline of a release (docs/abi.md).
#
#   sh tests/abi/abi_baseline.sh LIB.so HEADERS_DIR OUT
#
# Run from the root of the release's tree (HEADERS_DIR as the build saw it, e.g.
# `include`), on a library built there with -g. Writes two text files:
#
#   OUT.abi    libabigail's description (ABIXML) of LIB.so: its exported functions with
#              their symbol versions, their full types, and the types those reach.
#              Types not defined under HEADERS_DIR (the handles' private structs) are
#              kept as bare declarations, so their layout is not part of the baseline.
#   OUT.enums  "NAME VALUE" for every enumerator declared in HEADERS_DIR/*.h, the value
#              as the compiler computes it. libvib's enums are anonymous and travel as
#              int, so no function's type reaches them and abidiff cannot see them;
#              tests/abi/abi_gate.sh checks these lines instead.
#
# `make abi-baseline` (mk/abi.mk) runs this for the tree's own version into abi/.
set -eu

if [ $# -ne 3 ]; then
    echo "usage: sh tests/abi/abi_baseline.sh LIB.so HEADERS_DIR OUT" >&2
    exit 2
fi
lib=$1
hdrs=$2
out=$3
CC=${CC:-cc}

command -v abidw >/dev/null 2>&1 || {
    echo "abi-baseline: abidw not found (Debian: apt-get install abigail-tools)" >&2
    exit 2
}
[ -f "$lib" ] || { echo "abi-baseline: $lib: no such file" >&2; exit 2; }
[ -d "$hdrs" ] || { echo "abi-baseline: $hdrs: no such directory" >&2; exit 2; }

# --exported-interfaces-only: only what the ELF exports (not every extern function of
# every translation unit); --no-corpus-path, --no-comp-dir-path, --no-elf-needed: nothing
# that depends on the machine or on the libraries libvib itself links.
abidw --headers-dir "$hdrs" --drop-private-types --exported-interfaces-only \
    --no-corpus-path --no-comp-dir-path --no-elf-needed --out-file "$out.abi" "$lib"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# The enumerators' names: the headers with their comments removed (-fpreprocessed: no
# include is followed, no macro expanded), each `enum ... { ... }` body split at commas,
# each item up to its `=`. Then their values, from the compiler.
names=$(for h in "$hdrs"/*.h; do $CC -fpreprocessed -dD -E -P -w "$h"; done |
    tr '\n' ' ' |
    grep -o 'enum[[:space:]]*[A-Za-z_0-9]*[[:space:]]*{[^}]*}' |
    sed -e 's/^[^{]*{//' -e 's/}$//' | tr ',' '\n' |
    sed -e 's/=.*//' -e 's/[[:space:]]//g' | grep -v '^$' || true)
{
    echo '#include <stdio.h>'
    for h in "$hdrs"/*.h; do echo "#include \"$(basename "$h")\""; done
    echo 'int main(void)'
    echo '{'
    for n in $names; do
        printf '    printf("%%s %%lld\\n", "%s", (long long)(%s));\n' "$n" "$n"
    done
    echo '    return 0;'
    echo '}'
} > "$tmp/enums.c"
$CC -std=c11 -I"$hdrs" "$tmp/enums.c" -o "$tmp/enums"
"$tmp/enums" > "$out.enums"

echo "abi-baseline: wrote $out.abi ($(grep -c '<elf-symbol ' "$out.abi") symbols)" \
    "and $out.enums ($(wc -l < "$out.enums") enumerators)"
