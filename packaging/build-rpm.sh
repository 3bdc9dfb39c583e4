#!/usr/bin/env bash
# Builds the RPM pam-totp-<version>-1.x86_64.rpm from packaging/rpm/pam-totp.spec
# into <target>/rpm/ and prints its path on the last line.
#
# On Debian (Debian's "rpm" package provides rpmbuild) the spec's
# BuildRequires (cargo, rust, pam-devel, go-md2man) are not RPM packages, so
# rpmbuild runs with --nodeps and packages the release build and man pages
# made here ("prebuilt" mode of the spec) instead of compiling a second time.
# On an RPM distribution, "rpmbuild -ba" on the spec with the source tarball
# builds from source.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

command -v rpmbuild >/dev/null 2>&1 || {
	echo "build-rpm: rpmbuild not found; install the package rpm" >&2
	exit 2
}

spec=packaging/rpm/pam-totp.spec
version=$(pkg_version)
spec_version=$(sed -n 's/^Version: *//p' "$spec")
if [ "$spec_version" != "$version" ]; then
	echo "build-rpm: $spec says Version $spec_version but Cargo.toml says $version; update the spec (and its %changelog)" >&2
	exit 2
fi

"$REPO_ROOT/packaging/build-man.sh" >/dev/null
build_release
build_completions

target=$(target_dir)
top=$(mktemp -d "${TMPDIR:-/tmp}/pam-totp-rpm.XXXXXX")
trap 'rm -rf "$top"' EXIT
mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}

# Source tarball of the work tree: tracked and new files, not ignored ones.
epoch=$(source_date_epoch)
git ls-files -co --exclude-standard -z |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - --sort=name --mtime="@$epoch" --owner=0 --group=0 \
		--numeric-owner --transform "s,^,pam-totp-$version/," \
		-czf "$top/SOURCES/pam-totp-$version.tar.gz"

# Debian's rpm runs brp-compress with /bin/sh (dash), which lacks the
# "read -d" the script needs; bash runs it so the man pages get compressed.
SOURCE_DATE_EPOCH=$epoch rpmbuild -bb --nodeps --quiet \
	--define "_topdir $top" \
	--define "__brp_compress /bin/bash /usr/lib/rpm/brp-compress %{?_prefix}" \
	--define "prebuilt_dir $target/release" \
	--define "prebuilt_man $REPO_ROOT/packaging/build/man" \
	--define "prebuilt_completions $REPO_ROOT/packaging/build/completions" \
	"$spec"

mkdir -p "$target/rpm"
rpm=$(find "$top/RPMS" -name "pam-totp-$version-*.rpm" | head -n1)
[ -n "$rpm" ] || { echo "build-rpm: rpmbuild made no package" >&2; exit 1; }
cp "$rpm" "$target/rpm/"
echo "build-rpm: $target/rpm/$(basename "$rpm")"
