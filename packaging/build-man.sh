#!/usr/bin/env bash
# Generates the man pages from their one source each, packaging/man/*.md,
# with go-md2man (Debian package go-md2man). The generated pages are what the
# .deb, the .rpm and "make install" ship.
#
# Usage: packaging/build-man.sh [OUTDIR]   (default: packaging/build/man)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=${1:-$REPO_ROOT/packaging/build/man}
command -v go-md2man >/dev/null 2>&1 || {
	echo "build-man: go-md2man not found; install the Debian package go-md2man" >&2
	exit 2
}

version=$(pkg_version)
[ -n "$version" ] || { echo "build-man: no version in Cargo.toml" >&2; exit 2; }
date=$(date -u -d "@$(source_date_epoch)" +%Y-%m-%d)

mkdir -p "$out"
for src in "$REPO_ROOT"/packaging/man/*.md; do
	page=$(basename "$src" .md) # e.g. pam_totp.8
	sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$date/g" "$src" |
		go-md2man >"$out/$page.tmp"
	mv "$out/$page.tmp" "$out/$page"
	echo "build-man: $out/$page"
done
