# Shared helpers for the packaging scripts; sourced, not run.
# shellcheck shell=bash

# Repository root (the directory above packaging/).
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Cargo's target directory: CARGO_TARGET_DIR if set (relative to the repo
# root, as cargo reads it), else <repo>/target.
target_dir() {
	local t=${CARGO_TARGET_DIR:-target}
	case $t in
	/*) printf '%s\n' "$t" ;;
	*) printf '%s\n' "$REPO_ROOT/$t" ;;
	esac
}

# The version of the workspace ([workspace.package] version).
pkg_version() {
	sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' \
		"$REPO_ROOT/Cargo.toml" | head -n1
}

# Seconds since the epoch that stamp generated files: SOURCE_DATE_EPOCH if
# set (reproducible builds), else the last commit's time, else now.
source_date_epoch() {
	if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
		printf '%s\n' "$SOURCE_DATE_EPOCH"
	elif git -C "$REPO_ROOT" log -1 --format=%ct >/dev/null 2>&1; then
		git -C "$REPO_ROOT" log -1 --format=%ct
	else
		date +%s
	fi
}

# The release build of the module and the CLI (a no-op when up to date).
build_release() {
	(cd "$REPO_ROOT" && cargo build --release --locked -p pam_totp -p totp-enroll)
}

# Shell completion scripts from the release totp-enroll, into
# packaging/build/completions: totp-enroll (bash), _totp-enroll (zsh),
# totp-enroll.fish. Generated from the CLI definition, so they never lag it.
build_completions() {
	local bin out=$REPO_ROOT/packaging/build/completions
	bin=$(target_dir)/release/totp-enroll
	mkdir -p "$out"
	"$bin" completions bash >"$out/totp-enroll" &&
		"$bin" completions zsh >"$out/_totp-enroll" &&
		"$bin" completions fish >"$out/totp-enroll.fish"
}
