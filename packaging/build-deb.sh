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
# --multiarch=foreign installs the module in /usr/lib/<triple>/security.
# cargo-deb prints the path of the package it wrote on stdout.
deb=$(SOURCE_DATE_EPOCH=$(source_date_epoch) \
	cargo deb -p totp-enroll --no-build --locked --multiarch=foreign \
	--output "$(target_dir)/debian/" | tail -n1)
[ -f "$deb" ] || { echo "build-deb: cargo deb wrote no package" >&2; exit 1; }
echo "build-deb: $deb"
