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

# A line "@EXAMPLE NAME@" becomes the directives of packaging/examples/NAME
# (comments and blank lines dropped): the man pages show the very files the
# end-to-end tests log in through, and cannot drift from them.
expand_examples() {
	local line name file
	while IFS= read -r line; do
		if [[ $line =~ ^@EXAMPLE\ ([A-Za-z0-9._-]+)@$ ]]; then
			name=${BASH_REMATCH[1]}
			file=$REPO_ROOT/packaging/examples/$name
			[ -f "$file" ] || { echo "build-man: no example $name" >&2; return 2; }
			grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$file"
		else
			printf '%s\n' "$line"
		fi
	done
}

mkdir -p "$out"
for src in "$REPO_ROOT"/packaging/man/*.md; do
	page=$(basename "$src" .md) # e.g. pam_totp.8
	sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$date/g" "$src" |
		expand_examples | go-md2man >"$out/$page.tmp"
	mv "$out/$page.tmp" "$out/$page"
	echo "build-man: $out/$page"
done
