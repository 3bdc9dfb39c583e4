#!/usr/bin/env bash
# Source install of pam-totp ("make install"): the module, totp-enroll, the
# man pages, shell completions, the example configuration and examples.
#
#   make install                       # as root, into / with PREFIX=/usr
#   make install DESTDIR=/tmp/stage PREFIX=/usr/local
#   packaging/install.sh --uninstall   # remove what an install put there
#
# Variables: PREFIX (default /usr) for the command, man pages and docs;
# DESTDIR (default empty) staging root prepended to every path;
# SECURITYDIR, the PAM module directory, detected when unset: libpam only
# loads modules by bare name from its own directory, whatever PREFIX is, so
# this follows the distribution (pkg-config's pam libdir, the multiarch
# directory, lib64, lib); SYSCONFDIR (default /etc) for
# security/pam_totp.toml, which pam_totp.so reads; an existing file is never
# overwritten.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

PREFIX=${PREFIX:-/usr}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
mode=install
case "${1:-}" in
"") ;;
--uninstall) mode=uninstall ;;
*)
	echo "usage: $0 [--uninstall]   (variables PREFIX DESTDIR SECURITYDIR SYSCONFDIR)" >&2
	exit 2
	;;
esac

detect_securitydir() {
	local d libdir triple
	libdir=$(pkg-config --variable=libdir pam 2>/dev/null || true)
	if [ -n "$libdir" ] && [ -d "$libdir/security" ]; then
		printf '%s\n' "$libdir/security"
		return
	fi
	triple=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || true)
	for d in ${triple:+/usr/lib/$triple/security /lib/$triple/security} \
		/usr/lib64/security /lib64/security /usr/lib/security /lib/security; do
		if [ -d "$d" ]; then
			printf '%s\n' "$d"
			return
		fi
	done
	echo "install: cannot find the PAM module directory; set SECURITYDIR=" >&2
	return 1
}
# Canonical form: on merged-/usr systems /lib/<triple>/security is
# /usr/lib/<triple>/security, the path the .deb uses.
if [ -z "${SECURITYDIR:-}" ]; then
	SECURITYDIR=$(detect_securitydir)
	SECURITYDIR=$(readlink -f "$SECURITYDIR")
fi

target=$(target_dir)
man=$REPO_ROOT/packaging/build/man
completions=$REPO_ROOT/packaging/build/completions
docdir=$PREFIX/share/doc/pam-totp
# pam-auth-update reads profiles only from /usr/share/pam-configs (Debian).
pamconfigs=/usr/share/pam-configs

# Destination -> source, one per line (the config file is handled apart).
manifest() {
	printf '%s\t%s\t%s\n' \
		"$SECURITYDIR/pam_totp.so" "$target/release/libpam_totp.so" 0644 \
		"$PREFIX/bin/totp-enroll" "$target/release/totp-enroll" 0755 \
		"$PREFIX/share/man/man8/pam_totp.8" "$man/pam_totp.8" 0644 \
		"$PREFIX/share/man/man1/totp-enroll.1" "$man/totp-enroll.1" 0644 \
		"$PREFIX/share/man/man5/pam_totp.toml.5" "$man/pam_totp.toml.5" 0644 \
		"$PREFIX/share/bash-completion/completions/totp-enroll" "$completions/totp-enroll" 0644 \
		"$PREFIX/share/zsh/site-functions/_totp-enroll" "$completions/_totp-enroll" 0644 \
		"$PREFIX/share/fish/vendor_completions.d/totp-enroll.fish" "$completions/totp-enroll.fish" 0644
	local f
	for f in packaging/examples/*; do
		printf '%s\t%s\t%s\n' "$docdir/examples/$(basename "$f")" "$REPO_ROOT/$f" 0644
	done
	if [ -d "$pamconfigs" ]; then
		printf '%s\t%s\t%s\n' "$pamconfigs/totp" "$REPO_ROOT/packaging/pam-configs/totp" 0644
	fi
}

conf=$SYSCONFDIR/security/pam_totp.toml
if [ "$mode" = uninstall ]; then
	manifest | while IFS=$'\t' read -r dest _ _; do
		if [ -e "$DESTDIR$dest" ]; then
			rm -f "$DESTDIR$dest"
			echo "removed $DESTDIR$dest"
		fi
	done
	rmdir "$DESTDIR$docdir/examples" "$DESTDIR$docdir" 2>/dev/null || true
	if [ -e "$DESTDIR$conf" ] && cmp -s "$DESTDIR$conf" packaging/pam_totp.toml; then
		rm -f "$DESTDIR$conf"
		echo "removed $DESTDIR$conf"
	elif [ -e "$DESTDIR$conf" ]; then
		echo "kept $DESTDIR$conf (changed locally)"
	fi
	exit 0
fi

# Build what is missing or stale; a root "make install" without cargo uses
# the artefacts a "make release" left.
if command -v cargo >/dev/null 2>&1; then
	build_release >&2
fi
if [ -x "$target/release/totp-enroll" ]; then
	build_completions
fi
if command -v go-md2man >/dev/null 2>&1; then
	"$REPO_ROOT/packaging/build-man.sh" >/dev/null
fi
manifest | while IFS=$'\t' read -r dest src perm; do
	[ -e "$src" ] || { echo "install: $src is missing; run make release and make man" >&2; exit 1; }
	install -D -m "$perm" "$src" "$DESTDIR$dest"
	echo "installed $DESTDIR$dest"
done
if [ -e "$DESTDIR$conf" ]; then
	echo "kept $DESTDIR$conf (already there)"
else
	install -D -m 0644 packaging/pam_totp.toml "$DESTDIR$conf"
	echo "installed $DESTDIR$conf"
fi
if [ -z "$DESTDIR" ] && [ -d "$pamconfigs" ]; then
	echo "install: to add pam_totp to every service: pam-auth-update --enable totp"
fi
