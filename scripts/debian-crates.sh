#!/usr/bin/env bash
# Builds and tests the module and the CLI with the crate versions Debian 13
# packages (issue 15), so that the Debian Rust team can package pam-totp
# from the crates the release already carries.
#
# 1. Copies the workspace (the files git knows, not target/) to
#    $DEBIAN_CRATES_DIR/ws (default target/debian-crates/ws).
# 2. Pins every crate of the data file (default packaging/debian-13-crates.txt:
#    NAME VERSION [same-series] a line) that is in the copy's lockfile with
#    `cargo update -p NAME@LOCKED --precise VERSION`, in passes until
#    nothing changes (a pin may need another one first: serde after
#    serde_json).
# 3. Prints `cargo tree --depth 1 -e normal` of pam_totp and totp-enroll and
#    checks that every listed crate in the resolved graph (normal, build and
#    dev dependencies of the workspace) has exactly the listed version; each
#    mismatch is one line, with cargo's reason when the pin failed; any
#    mismatch fails the script (exit 1) before anything is built.
# 4. Runs the tests of pam-totp-shared, pam_totp and totp-enroll with that
#    lockfile (--locked), then the real-libpam tests of the module
#    (pam-totp-tests --test module), with CARGO_TARGET_DIR
#    $DEBIAN_CRATES_DIR/target: the normal target/ is not touched.
#    shared's pg_django test is left out: it installs Django from PyPI, and
#    this check needs no network beyond crates.io.
#
# Usage: scripts/debian-crates.sh [--resolve-only | --no-run] [DATA_FILE]
#   --resolve-only   steps 1-3 only (seconds; no build)
#   --no-run         steps 1-3 and the build of step 4, no test run
# The tests create users and use pam_wrapper: run by hand next to other
# test runs, build with --no-run first, then run the tests under the
# project's lock (flock /tmp/pam-e2e.lock scripts/debian-crates.sh); the
# copy keeps the files' times, so the second run rebuilds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

mode=test
case ${1:-} in --resolve-only | --no-run)
	mode=${1#--}
	shift
	;;
esac
data=${1:-packaging/debian-13-crates.txt}
case $data in /*) ;; *) data="$root/$data" ;; esac
[ -r "$data" ] || { echo "debian-crates: cannot read $data" >&2; exit 2; }
dir=${DEBIAN_CRATES_DIR:-$root/target/debian-crates}
ws=$dir/ws
log=$dir/cargo-update.log

# The list: "NAME VERSION FLAG" lines, comments and blank lines dropped.
names=() versions=() flags=()
while read -r name version flag _; do
	case $name in '' | '#'*) continue ;; esac
	if [ -z "$version" ]; then
		echo "debian-crates: $data: '$name' has no version" >&2
		exit 2
	fi
	case ${flag:-} in '' | '#'*) flag="" ;; same-series) ;; *)
		echo "debian-crates: $data: '$name': unknown flag '$flag'" >&2
		exit 2
		;;
	esac
	names+=("$name") versions+=("$version") flags+=("$flag")
done <"$data"

# The semver series of a version: 1.2.3 -> 1, 0.38.4 -> 0.38, 0.0.7 -> 0.0.7.
series() {
	local v=${1%%+*} ma mi pa
	IFS=. read -r ma mi pa <<<"${v%%-*}"
	if [ "$ma" != 0 ]; then
		echo "$ma"
	elif [ "$mi" != 0 ]; then
		echo "0.$mi"
	else
		echo "0.0.$pa"
	fi
}

# The versions of crate $1 in the copy's Cargo.lock, one a line.
locked() {
	awk -v n="\"$1\"" '$1 == "name" && $3 == n { getline; gsub(/"/, "", $3); print $3 }' \
		"$ws/Cargo.lock"
}

# 1. The copy.
echo "== Copy of the workspace in $ws"
rm -rf "$ws"
mkdir -p "$ws"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -xpf - -C "$ws"
else
	tar --exclude=./target --exclude=./fuzz/target --exclude=./.git -cf - . | tar -xpf - -C "$ws"
fi
cd "$ws"

# 2. The pins.
echo "== Pinning the crates of ${data#"$root"/}"
: >"$log"
declare -A why=()
for pass in 1 2 3 4 5; do
	changed=0
	for i in "${!names[@]}"; do
		name=${names[$i]} want=${versions[$i]}
		have=$(locked "$name")
		[ -n "$have" ] || continue
		sed 's/+.*//' <<<"$have" | grep -qxF "$want" && continue
		# The locked version of the same series, else the first one.
		from=$(head -n1 <<<"$have")
		while read -r v; do
			if [ "$(series "$v")" = "$(series "$want")" ]; then from=$v; fi
		done <<<"$have"
		if out=$(cargo update -p "$name@$from" --precise "$want" 2>&1); then
			echo "pass $pass: $name $from -> $want" >>"$log"
			unset "why[$name]"
			changed=1
		else
			printf 'pass %s: %s %s -> %s failed:\n%s\n' "$pass" "$name" "$from" "$want" "$out" >>"$log"
			# cargo's first error line and the package that asks for more.
			why[$name]=$(grep -m1 -E '^error' <<<"$out" || true)
			req=$(grep -m1 -E 'required by package' <<<"$out" || true)
			[ -z "$req" ] || why[$name]="${why[$name]}; ${req#"${req%%[![:space:]]*}"}"
		fi
	done
	[ "$changed" = 1 ] || break
done
echo "(cargo update's output: $log)"

# 3. The resolved graph and the check.
for p in pam_totp totp-enroll; do
	echo "== cargo tree -p $p --depth 1 -e normal"
	cargo tree --locked -p "$p" --depth 1 -e normal
done
graph=$(cargo tree --locked --workspace -e normal,build,dev --prefix none -f '{p}' |
	awk '{ print $1, $2 }' | sed 's/ v/ /' | sort -u)
echo "== The listed crates in the resolved graph (normal, build and dev dependencies)"
bad=0 seen=0
for i in "${!names[@]}"; do
	name=${names[$i]} want=${versions[$i]} flag=${flags[$i]}
	have=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$graph")
	if [ -z "$have" ]; then
		printf '  %-14s %-17s not in the graph\n' "$name" "-"
		continue
	fi
	seen=$((seen + 1))
	while read -r v; do
		if [ "${v%%+*}" = "$want" ]; then
			printf '  %-14s %-17s ok\n' "$name" "$v"
		elif [ "$flag" = same-series ] && [ "$(series "$v")" = "$(series "$want")" ]; then
			printf '  %-14s %-17s ok: same series as Debian 13'"'"'s %s (same-series, see the data file)\n' \
				"$name" "$v" "$want"
		else
			printf '  %-14s %-17s MISMATCH: Debian 13 has %s%s\n' "$name" "$v" "$want" \
				"${why[$name]:+ (pin failed: ${why[$name]})}"
			bad=$((bad + 1))
		fi
	done <<<"$have"
done
if [ "$bad" -gt 0 ]; then
	echo "debian-crates: FAILED: $bad resolved versions of listed crates are not Debian 13's (MISMATCH lines above)"
	exit 1
fi
echo "debian-crates: all $seen listed crates in the graph resolve to Debian 13's versions"
# Debian 13's rustc is 1.85, the workspace's rust-version: no crate of this
# graph may need a newer one.
"$root/scripts/msrv-lock.sh" "$ws"
[ "$mode" != resolve-only ] || exit 0

# 4. The tests with that lockfile.
export CARGO_TARGET_DIR=$dir/target
shared_tests=()
for t in shared/tests/*.rs; do
	t=$(basename "$t" .rs)
	[ "$t" = pg_django ] || shared_tests+=(--test "$t")
done
if [ "$mode" = no-run ]; then
	echo "== Building the tests (--no-run)"
	cargo test --locked --no-run -p pam-totp-shared --lib "${shared_tests[@]}"
	cargo test --locked --no-run -p pam_totp -p totp-enroll
	cargo test --locked --no-run -p pam-totp-tests --test module
	cargo build --locked -p pam_totp
	exit 0
fi
# Every command runs, every failing test binary is reported (--no-fail-fast).
failed=()
run() {
	echo "== $*"
	"$@" || failed+=("$*")
}
run cargo test --locked --no-fail-fast -p pam-totp-shared --lib "${shared_tests[@]}"
run cargo test --locked --no-fail-fast -p pam-totp-shared --doc
run cargo test --locked --no-fail-fast -p pam_totp -p totp-enroll
run cargo test --locked -p pam-totp-tests --test module -- --test-threads=1
if [ "${#failed[@]}" -gt 0 ]; then
	echo "debian-crates: FAILED with Debian 13's crate versions:"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "debian-crates: the module and the CLI build and pass their tests with Debian 13's crate versions"
