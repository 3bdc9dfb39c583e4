#!/usr/bin/env bash
# Builds the Debian package libpam-totp_<version>_amd64.deb with cargo-deb
# into <target>/debian/ and prints its path on the last line.
# The cargo-deb metadata is [package.metadata.deb] in enroll/Cargo.toml.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

command -v cargo-deb >/dev/null 2>&1 || {
	echo "build-deb: cargo-deb not found; run .ci/install-deps (cargo install cargo-deb)" >&2
	exit 2
}

"$REPO_ROOT/packaging/build-man.sh" >/dev/null
build_release
build_completions
# The release build above is the one packaged: no second build by cargo-deb.
# --multiarch=foreign installs the module in /usr/lib/<triple>/security,
# where Debian's libpam looks, and marks the package Multi-Arch: foreign
# (not "same": /usr/bin/totp-enroll could not be co-installed for two
# architectures). cargo-deb then warns that "Multiarch packages are not
# allowed to contain both libs and binaries", a rule for "same" library
# packages that does not apply here; that warning (its line and the
# indented one after it) is dropped so that a clean build prints no
# warning. Any other warning still shows.
# cargo-deb prints the path of the package it wrote on stdout.
deb=$(SOURCE_DATE_EPOCH=$(source_date_epoch) \
	cargo deb -p totp-enroll --no-build --locked --multiarch=foreign \
	--output "$(target_dir)/debian/" \
	2> >(awk '/Multiarch packages are not allowed to contain both libs and binaries/ { skip = 1; next }
		skip && /^ / { next }
		{ skip = 0; print }' >&2) |
	tail -n1)
[ -f "$deb" ] || { echo "build-deb: cargo deb wrote no package" >&2; exit 1; }
echo "build-deb: $deb"
