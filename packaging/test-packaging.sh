#!/usr/bin/env bash
# Packaging test (issue 5), run by "make test-packaging" as root on Debian.
#
# Builds the .deb and the .rpm, checks them with lintian, rpm and man, then
# installs the .deb for real: enrols a temporary user with the installed
# totp-enroll, logs in through the installed pam_totp.so (bare name) with
# pamtester, enables and disables the pam-auth-update profile, purges the
# package and checks that nothing of it is left and /etc/pam.d is as before.
#
# The machine is restored on every exit path (trap): package purged, test
# user and temporary PAM service removed, /etc/pam.d/common-* and
# /var/lib/pam (pam-auth-update's state) put back if they changed.
# Prints one PASS/FAIL line per check and ends with
# "packaging: N passed, M failed"; exits non-zero if any check failed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 2

PKG=libpam-totp
VERSION=$(pkg_version)
TARGET=$(target_dir)
MODULE=/usr/lib/x86_64-linux-gnu/security/pam_totp.so
CONF=/etc/security/pam_totp.toml
SERVICE=pam-totp-pkgtest-$$
TEST_USER=totppkg$$
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

passed=0
failed=0
declare -A ok # check name -> 1 when it passed

# check NAME DESCRIPTION FUNCTION: runs FUNCTION, its output indented,
# and prints PASS or FAIL for it.
check() {
	local name=$1 desc=$2 fn=$3 log rc
	log=$WORK/check.log
	"$fn" >"$log" 2>&1
	rc=$?
	sed 's/^/    /' "$log"
	rm -f "$log"
	if [ "$rc" -eq 0 ]; then
		echo "PASS: $desc"
		passed=$((passed + 1))
		ok[$name]=1
	else
		echo "FAIL: $desc"
		failed=$((failed + 1))
	fi
}

# needs NAME...: fails (with the reason) unless every named check passed.
needs() {
	local n
	for n in "$@"; do
		if [ -z "${ok[$n]:-}" ]; then
			echo "not run: it needs the check '$n', which failed"
			return 1
		fi
	done
}

fail() {
	echo "$*"
	return 1
}

# --- snapshot and restore -------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pam-totp-pkgtest.XXXXXX")
# File name, mode, owner and content hash of everything in /etc/pam.d.
pam_stacks() {
	find /etc/pam.d -xdev \( -type f -o -type l \) -print0 | sort -z |
		while IFS= read -r -d '' f; do
			printf '%s %s %s\n' "$(stat -c '%a %U:%G' "$f")" \
				"$(sha256sum <"$f" | cut -d' ' -f1)" "$f"
		done
}
pam_stacks >"$WORK/pam.d.before"
cp -a /etc/pam.d "$WORK/pam.d.orig"
if [ -d /var/lib/pam ]; then cp -a /var/lib/pam "$WORK/var-lib-pam.orig"; fi
was_installed=$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true)
conf_existed=no
[ -e "$CONF" ] && conf_existed=yes
user_created=no

# The script's own output, for the cleanup messages even when a signal
# arrives while a check's output goes to its log.
exec 3>&1

cleanup() {
	local f
	trap - EXIT INT TERM
	exec >&3 2>&3
	rm -f "/etc/pam.d/$SERVICE"
	# Purge the package only if this run installed it.
	if [ "$was_installed" != installed ] && pkg_known; then
		echo "cleanup: purging $PKG"
		dpkg_locked --purge "$PKG" >/dev/null 2>&1 || echo "cleanup: dpkg --purge $PKG failed"
	fi
	for f in "$WORK"/pam.d.orig/common-*; do
		if ! cmp -s "$f" "/etc/pam.d/$(basename "$f")"; then
			echo "cleanup: restoring /etc/pam.d/$(basename "$f")"
			cp -a "$f" /etc/pam.d/
		fi
	done
	if [ -d "$WORK/var-lib-pam.orig" ] && ! diff -r -q "$WORK/var-lib-pam.orig" /var/lib/pam >/dev/null 2>&1; then
		echo "cleanup: restoring /var/lib/pam"
		rm -rf /var/lib/pam && cp -a "$WORK/var-lib-pam.orig" /var/lib/pam
	fi
	if [ "$user_created" = yes ]; then
		userdel -r "$TEST_USER" >/dev/null 2>&1 || echo "cleanup: userdel $TEST_USER failed"
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Does dpkg know the package in any state (installed, config-files...)?
pkg_known() {
	dpkg-query -W -f='${db:Status-Status}\n' "$PKG" 2>/dev/null | grep -qv '^not-installed$'
}

# dpkg, waiting up to 120 s for the dpkg lock another process may hold.
dpkg_locked() {
	local out rc
	for _ in $(seq 60); do
		out=$(dpkg "$@" 2>&1)
		rc=$?
		if [ $rc -ne 0 ] && grep -q 'lock' <<<"$out"; then
			sleep 2
			continue
		fi
		printf '%s\n' "$out"
		return $rc
	done
	printf '%s\n' "$out"
	return 1
}

# --- checks ----------------------------------------------------------------

DEB=

c_deb_builds() {
	local out want f
	out=$("$REPO_ROOT/packaging/build-deb.sh" 2>&1) || { printf '%s\n' "$out" | tail -n 30; return 1; }
	DEB=$(printf '%s\n' "$out" | sed -n 's/^build-deb: //p' | tail -n1)
	case $(basename "$DEB") in
	"${PKG}_${VERSION}"-*_amd64.deb) ;;
	*) fail "unexpected package file name: $DEB" ;;
	esac || return 1
	[ "$(dirname "$DEB")" = "$TARGET/debian" ] || fail "$DEB is not under $TARGET/debian" || return 1
	echo "built $DEB"
	dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's,^\./,/,' >"$WORK/deb.files"
	for want in "$MODULE" /usr/bin/totp-enroll \
		/usr/share/man/man8/pam_totp.8.gz /usr/share/man/man1/totp-enroll.1.gz \
		/usr/share/man/man5/pam_totp.toml.5.gz "$CONF" /usr/share/pam-configs/totp \
		/usr/share/doc/$PKG/copyright /usr/share/doc/$PKG/changelog.Debian.gz \
		/usr/share/doc/$PKG/changelog.gz /usr/share/doc/$PKG/README.md \
		/usr/share/doc/$PKG/examples/pam.d-sshd /usr/share/doc/$PKG/examples/pam.d-sudo \
		/usr/share/doc/$PKG/examples/sshd_config.d-totp.conf \
		/usr/share/doc/$PKG/examples/central-mode.md \
		/usr/share/lintian/overrides/$PKG \
		/usr/share/bash-completion/completions/totp-enroll \
		/usr/share/zsh/vendor-completions/_totp-enroll \
		/usr/share/fish/vendor_completions.d/totp-enroll.fish; do
		grep -qxF "$want" "$WORK/deb.files" || fail "missing from the package: $want" || return 1
	done
	dpkg-deb -f "$DEB" Package Version Architecture Multi-Arch Depends | sed 's/^/control: /'
	dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles | grep -qxF "$CONF" ||
		fail "$CONF is not a conffile" || return 1
	dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./postinst | grep -q '^[[:space:]]*pam-auth-update --package$' ||
		fail "postinst does not run pam-auth-update --package" || return 1
	dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./prerm | grep -q 'pam-auth-update --package --remove totp' ||
		fail "prerm does not run pam-auth-update --package --remove totp" || return 1
	# The profile: off by default, a second factor after the primary block.
	dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/share/pam-configs/totp >"$WORK/profile"
	grep -qx 'Default: no' "$WORK/profile" || fail "profile is not Default: no" || return 1
	grep -qx 'Auth-Type: Additional' "$WORK/profile" || fail "profile is not Auth-Type: Additional" || return 1
	# The conffile shows every setting, commented out.
	dpkg-deb --fsys-tarfile "$DEB" | tar -xO ".$CONF" >"$WORK/conf"
	for f in sync throttle_factor issuer image path digits step tolerance algorithm; do
		grep -q "^#$f = " "$WORK/conf" || fail "$CONF lacks a commented '$f = ' line" || return 1
	done
	grep -qx '#\[enroll\]' "$WORK/conf" || fail "$CONF lacks a commented [enroll] table" || return 1
	if grep -v '^\s*#' "$WORK/conf" | grep -q '[^[:space:]]'; then
		fail "$CONF sets something; every line must be a comment"
		return 1
	fi
	echo "$(wc -l <"$WORK/deb.files") paths, conffile, maintainer scripts and profile as expected"
}

c_lintian() {
	needs deb || return 1
	local out tag
	# Every override must say why, in a comment right above it.
	awk '
		/^[[:space:]]*$/ { reason = 0; next }
		/^[[:space:]]*#/ { reason = 1; next }
		!reason { print "override without a reason: " $0; bad = 1 }
		END { exit bad }' "$REPO_ROOT/packaging/debian/lintian-overrides" || return 1
	out=$(lintian --display-info --show-overrides "$DEB" 2>&1 | grep -v '^running with root privileges')
	printf '%s\n' "$out" | grep -E '^[EWION]:' || true
	for tag in E W I O; do
		printf '%s: %s  ' "$tag" "$(printf '%s\n' "$out" | grep -c "^$tag:")"
	done
	echo "(E error, W warning, I info, O overridden with the reason shown)"
	if printf '%s\n' "$out" | grep -q '^[EW]:'; then
		fail "lintian reports errors or warnings"
		return 1
	fi
}

c_man() {
	local p w out word
	"$REPO_ROOT/packaging/build-man.sh" >/dev/null || return 1
	for p in pam_totp.8 totp-enroll.1 pam_totp.toml.5; do
		w=$(MANWIDTH=80 man --warnings -l "$REPO_ROOT/packaging/build/man/$p" 2>&1 >/dev/null)
		[ -z "$w" ] || fail "man --warnings $p: $w" || return 1
		echo "$p renders without warnings"
	done
	# The pages document every argument, return code, setting and field.
	out=$(MANWIDTH=200 man -l "$REPO_ROOT/packaging/build/man/pam_totp.8" 2>/dev/null)
	for word in path= config= nullok use_first_pass try_first_pass forward_pass stash_code \
		use_stored_code prompt= echo throttle_factor= throttle_max= no_sync debug PAM_SUCCESS PAM_AUTH_ERR PAM_MAXTRIES \
		PAM_IGNORE PAM_USER_UNKNOWN PAM_AUTHINFO_UNAVAIL PAM_SERVICE_ERR sshd sudo \
		AuthenticationMethods pam-auth-update; do
		grep -qF -- "$word" <<<"$out" || fail "pam_totp(8) does not mention $word" || return 1
	done
	out=$(MANWIDTH=200 man -l "$REPO_ROOT/packaging/build/man/pam_totp.toml.5" 2>/dev/null)
	for word in sync throttle_factor throttle_max issuer image path '[enroll]' digits step tolerance algorithm \
		version '[[device]]' name key t0 drift last_t confirmed created_at last_used_at \
		throttling_failure_count throttling_failure_timestamp static_throttle_factor \
		'[backup_codes]' argon2id params salt format codes; do
		grep -qF -- "$word" <<<"$out" || fail "pam_totp.toml(5) does not mention $word" || return 1
	done
	out=$(MANWIDTH=200 man -l "$REPO_ROOT/packaging/build/man/totp-enroll.1" 2>/dev/null)
	for word in add confirm list show remove reset import-google-authenticator batch \
		--name --digits --step --t0 --tolerance --algorithm --key --secret --issuer \
		--image --account --no-confirm --qr --qr-png --qr-svg --user --path --config \
		--json --users --users-from --confirmed completions key_hex 'EXIT STATUS' \
		backup-codes --count --yes --no-backup-codes; do
		grep -qF -- "$word" <<<"$out" || fail "totp-enroll(1) does not mention $word" || return 1
	done
	echo "every module argument, return code, setting, file field and CLI flag is documented"
}

c_docs() {
	"$REPO_ROOT/packaging/check-docs.sh"
}

c_rpm() {
	local out rpm list want
	out=$("$REPO_ROOT/packaging/build-rpm.sh" 2>&1) || { printf '%s\n' "$out" | tail -n 30; return 1; }
	rpm=$(printf '%s\n' "$out" | sed -n 's/^build-rpm: //p' | tail -n1)
	echo "built $rpm"
	list=$(rpm -qlp "$rpm" 2>/dev/null) || fail "rpm -qlp $rpm failed" || return 1
	for want in /usr/lib64/security/pam_totp.so /usr/bin/totp-enroll \
		/usr/share/man/man8/pam_totp.8.gz /usr/share/man/man1/totp-enroll.1.gz \
		/usr/share/man/man5/pam_totp.toml.5.gz "$CONF" \
		/usr/share/bash-completion/completions/totp-enroll; do
		grep -qxF "$want" <<<"$list" || fail "rpm -qlp does not list $want" || return 1
		echo "rpm -qlp: $want"
	done
	rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" 2>/dev/null | grep -q "^cn* $CONF$" ||
		fail "$CONF is not %config(noreplace) in the rpm" || return 1
}

c_make_install() {
	local stage="$WORK/stage" f
	make -s -C "$REPO_ROOT" install DESTDIR="$stage" PREFIX=/usr/local >"$WORK/install.log" 2>&1 ||
		{ tail -n 20 "$WORK/install.log"; return 1; }
	for f in "$MODULE" /usr/local/bin/totp-enroll /usr/local/share/man/man8/pam_totp.8 \
		/usr/local/share/man/man1/totp-enroll.1 /usr/local/share/man/man5/pam_totp.toml.5 \
		"$CONF" /usr/local/share/doc/pam-totp/examples/pam.d-sshd; do
		[ -f "$stage$f" ] || fail "make install did not stage $f" || return 1
	done
	echo "make install DESTDIR=... PREFIX=/usr/local staged $(find "$stage" -type f | wc -l) files, module in $(dirname "$MODULE")"
	DESTDIR="$stage" PREFIX=/usr/local "$REPO_ROOT/packaging/install.sh" --uninstall >/dev/null || return 1
	[ -z "$(find "$stage" -type f)" ] || fail "install.sh --uninstall left: $(find "$stage" -type f)" || return 1
	echo "install.sh --uninstall removed them all"
}

c_dpkg_install() {
	needs deb || return 1
	[ "$was_installed" != installed ] || fail "$PKG was installed before this test; not touching it" || return 1
	[ "$conf_existed" = no ] || fail "$CONF exists without the package; not touching it" || return 1
	dpkg_locked -i "$DEB" || return 1
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG")" = installed ] || fail "$PKG is not installed" || return 1
	[ -f "$MODULE" ] || fail "$MODULE is missing" || return 1
	[ -x /usr/bin/totp-enroll ] || fail "/usr/bin/totp-enroll is missing" || return 1
	grep -qx totp /var/lib/pam/seen || fail "postinst did not register the profile (not in /var/lib/pam/seen)" || return 1
	cmp -s "$WORK/pam.d.orig/common-auth" /etc/pam.d/common-auth ||
		fail "installing changed /etc/pam.d/common-auth (the profile is Default: no)" || return 1
	echo "installed; profile registered, common-auth untouched"
	dpkg-query -L "$PKG" >"$WORK/installed.list" || return 1
	local page w
	for page in "8 pam_totp" "1 totp-enroll" "5 pam_totp.toml"; do
		# shellcheck disable=SC2086 # section and name
		w=$(MANWIDTH=80 man --warnings $page 2>&1 >/dev/null)
		[ -z "$w" ] || fail "installed man page $page: ${w:-not found}" || return 1
	done
	echo "installed man pages: $(man -w pam_totp totp-enroll pam_totp.toml | tr '\n' ' ')"
}

KEY_HEX=
DIGITS=
STEP=
T0=
ALGORITHM=
TOLERANCE=
DEVICE=
DEVICE_FILE=

# One field of totp-enroll's one-line JSON object: a string (hex, base32,
# a plain name) or a number. sed, so the test needs no JSON tool.
json_field() {
	sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$2" | head -n1
}

# The code of time step COUNTER (default: now) for the enrolled device.
code_at() {
	local now=${1:+@$((T0 + $1 * STEP))}
	oathtool --totp="${ALGORITHM,,}" --digits="$DIGITS" --time-step-size="${STEP}s" \
		--start-time="@$T0" ${now:+--now="$now"} "$KEY_HEX"
}

c_enroll() {
	needs dpkg_install || return 1
	local json home rc
	if getent passwd "$TEST_USER" >/dev/null; then
		fail "user $TEST_USER exists already"
		return 1
	fi
	useradd --create-home --shell /usr/sbin/nologin "$TEST_USER" || return 1
	user_created=yes
	home=$(getent passwd "$TEST_USER" | cut -d: -f6)
	# The user enrols themself, as in per-user mode: create...
	json=$(cd / && runuser -u "$TEST_USER" -- /usr/bin/totp-enroll --json --no-confirm 2>"$WORK/enroll.err")
	rc=$?
	sed 's/^/totp-enroll stderr: /' "$WORK/enroll.err"
	[ $rc -eq 0 ] || fail "installed totp-enroll --json --no-confirm exited $rc" || return 1
	# (printed without the secret fields)
	printf '%s\n' "$json" |
		sed -e 's/"\(key_hex\|secret_base32\|config_url\)": *"[^"]*"/"\1":"(not shown)"/g'
	KEY_HEX=$(json_field key_hex "$json")
	DIGITS=$(json_field digits "$json")
	STEP=$(json_field step "$json")
	T0=$(json_field t0 "$json")
	ALGORITHM=$(json_field algorithm "$json")
	TOLERANCE=$(json_field tolerance "$json")
	DEVICE=$(json_field device_name "$json")
	[ -n "$KEY_HEX" ] && [ -n "$DIGITS" ] && [ -n "$STEP" ] && [ -n "$T0" ] &&
		[ -n "$ALGORITHM" ] && [ -n "$TOLERANCE" ] && [ -n "$DEVICE" ] ||
		fail "the JSON lacks key_hex, digits, step, t0, algorithm, tolerance or device_name" || return 1
	DEVICE_FILE=$home/.config/pam_totp/devices.toml
	[ -f "$DEVICE_FILE" ] || fail "no device file at $DEVICE_FILE" || return 1
	[ "$(stat -c '%a %U' "$DEVICE_FILE")" = "600 $TEST_USER" ] ||
		fail "$DEVICE_FILE is $(stat -c '%a %U' "$DEVICE_FILE"), not 600 $TEST_USER" || return 1
	echo "created device '$DEVICE' in $DEVICE_FILE (600, owned by the user)"
	# ...then confirm with the code the app would show now (from stdin).
	# (its JSON holds the key: not printed)
	code_at | (cd / && runuser -u "$TEST_USER" -- /usr/bin/totp-enroll confirm "$DEVICE" --json) >/dev/null
	rc=${PIPESTATUS[1]}
	[ "$rc" -eq 0 ] || fail "totp-enroll confirm $DEVICE with oathtool's current code exited $rc" || return 1
	grep -qx 'confirmed = true' "$DEVICE_FILE" || fail "the device is not confirmed in $DEVICE_FILE" || return 1
	echo "confirmed it with oathtool's current code"
}

c_login() {
	needs enroll || return 1
	local code rc last_t counter
	printf '%s\n' '# Temporary service of packaging/test-packaging.sh' \
		'auth     required  pam_totp.so' 'account  required  pam_permit.so' >"/etc/pam.d/$SERVICE"
	# Confirming used up the current step (replay protection), so log in
	# with the code of the step after the last accepted one: within the
	# tolerance window now, or the current step a moment later.
	last_t=$(sed -n 's/^last_t *= *\(-\{0,1\}[0-9]\{1,\}\).*/\1/p' "$DEVICE_FILE")
	[ -n "$last_t" ] && [ "$last_t" -ge 0 ] || fail "no last_t recorded in $DEVICE_FILE after confirm" || return 1
	if [ "$TOLERANCE" -lt 1 ]; then
		sleep "$STEP"
	fi
	counter=$((last_t + 1))
	code=$(code_at "$counter") || fail "oathtool failed" || return 1
	printf '%s\n' "$code" | pamtester "$SERVICE" "$TEST_USER" authenticate 2>&1
	rc=${PIPESTATUS[1]}
	[ "$rc" -eq 0 ] || fail "the installed module refused the code of step $counter (pamtester exit $rc)" || return 1
	echo "code of step $counter (last_t was $last_t) accepted through 'auth required pam_totp.so'"
	# The same code again is a replay: the module must have saved last_t.
	printf '%s\n' "$code" | pamtester "$SERVICE" "$TEST_USER" authenticate 2>&1
	rc=${PIPESTATUS[1]}
	[ "$rc" -ne 0 ] || fail "the same code was accepted twice" || return 1
	echo "the same code again is refused (replay), pamtester exit $rc"
	rm -f "/etc/pam.d/$SERVICE"
}

c_conffile() {
	needs enroll || return 1
	local f=$WORK/pam_totp.uncommented.toml rc n
	# Uncomment every setting of the shipped conffile: its defaults must be
	# valid settings, as the installed tools read them.
	sed -e 's/^#\([a-z_]\{1,\} = \)/\1/' -e 's/^#\(\[enroll\]\)$/\1/' "$CONF" >"$f"
	chmod 600 "$f"
	n=$(grep -c '^[a-z_]* = ' "$f")
	[ "$n" -eq 10 ] || fail "expected 10 settings after uncommenting $CONF, found $n" || return 1
	/usr/bin/totp-enroll --config "$f" --user "$TEST_USER" list >/dev/null
	rc=$?
	[ $rc -eq 0 ] || fail "the installed totp-enroll refuses the uncommented $CONF (exit $rc)" || return 1
	echo "all $n settings of $CONF, uncommented, are accepted by the installed totp-enroll"
	# And a misspelt key is refused (exit 2), so this check can fail.
	printf 'syncc = true\n' >"$f"
	/usr/bin/totp-enroll --config "$f" --user "$TEST_USER" list >/dev/null 2>&1
	rc=$?
	[ $rc -eq 2 ] || fail "a misspelt setting was not refused with exit 2 (exit $rc)" || return 1
	echo "a misspelt setting is refused (exit 2)"
}

c_pam_auth_update() {
	needs dpkg_install || return 1
	local pw last_t code rc n
	cp -a /etc/pam.d/common-auth "$WORK/common-auth.before"
	pam-auth-update --enable totp || fail "pam-auth-update --enable totp failed" || return 1
	grep -E '^auth[[:space:]]+required[[:space:]]+pam_totp\.so' /etc/pam.d/common-auth ||
		fail "--enable totp did not add pam_totp.so to common-auth" || return 1
	# After pam_permit.so: the additional block, a second factor.
	awk '/pam_permit\.so/ { p = NR } /pam_totp\.so/ { t = NR } END { exit !(p && t > p) }' \
		/etc/pam.d/common-auth || fail "pam_totp.so is not in the additional block" || return 1
	echo "enable added it after pam_permit.so"
	# With the profile on, a service that includes common-auth asks for the
	# password, then the code (the enrolled user from the checks above).
	if [ -n "${ok[login]:-}" ]; then
		pw=$(head -c 12 /dev/urandom | base64)
		printf '%s:%s\n' "$TEST_USER" "$pw" | chpasswd || return 1
		printf '%s\n' '# Temporary service of packaging/test-packaging.sh' \
			'@include common-auth' 'account  required  pam_permit.so' >"/etc/pam.d/$SERVICE"
		last_t=$(sed -n 's/^last_t *= *\([0-9]\{1,\}\).*/\1/p' "$DEVICE_FILE")
		code=$(code_at $((last_t + 1)))
		# The replayed code of the login check counts as a failure: wait out
		# the back-off (throttle_factor 1: 2^(failures-1) seconds).
		# (The device and its backup-code set each count: the longer wait.)
		n=$(sed -n 's/^throttling_failure_count *= *\([0-9]\{1,\}\).*/\1/p' "$DEVICE_FILE" |
			sort -n | tail -n 1)
		if [ "${n:-0}" -gt 0 ]; then
			echo "waiting $((1 << (n - 1))) s for the back-off of $n failure(s)"
			sleep $(((1 << (n - 1)) + 1))
		fi
		printf '%s\n%s\n' "$pw" "$code" | pamtester "$SERVICE" "$TEST_USER" authenticate 2>&1
		rc=${PIPESTATUS[1]}
		rm -f "/etc/pam.d/$SERVICE"
		[ "$rc" -eq 0 ] || fail "password + code through common-auth failed (pamtester exit $rc)" || return 1
		echo "password, then code, through common-auth: accepted"
	else
		echo "(login through common-auth not tried: the login check failed)"
	fi
	# An upgrade (here: the same version again) keeps the admin's choice:
	# prerm "upgrade" does not take the profile out.
	dpkg_locked -i "$DEB" >/dev/null || fail "installing the package again failed" || return 1
	grep -q 'pam_totp\.so' /etc/pam.d/common-auth ||
		fail "installing the package again turned the profile off" || return 1
	echo "installing again (the upgrade path) kept the profile on"
	pam-auth-update --disable totp || fail "pam-auth-update --disable totp failed" || return 1
	cmp "$WORK/common-auth.before" /etc/pam.d/common-auth ||
		fail "common-auth differs after --enable then --disable" || return 1
	echo "disable left common-auth byte-identical"
}

c_remove() {
	needs dpkg_install || return 1
	local refs
	pam-auth-update --enable totp || fail "pam-auth-update --enable totp failed" || return 1
	grep -q 'pam_totp\.so' /etc/pam.d/common-auth || fail "--enable totp did nothing" || return 1
	# Removing the package while the profile is on must take the module out
	# of every stack before the module goes, or nobody could log in.
	dpkg_locked -r "$PKG" || return 1
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG")" = config-files ] ||
		fail "after dpkg -r the package is not in state config-files" || return 1
	[ ! -e "$MODULE" ] || fail "$MODULE is still there after dpkg -r" || return 1
	cmp "$WORK/pam.d.orig/common-auth" /etc/pam.d/common-auth ||
		fail "dpkg -r with the profile on left common-auth changed" || return 1
	refs=$(grep -rlE '(^|[[:space:]])pam_totp\.so' /etc/pam.d)
	[ -z "$refs" ] || fail "stacks still name pam_totp.so after dpkg -r: $refs" || return 1
	[ -f "$CONF" ] || fail "dpkg -r removed the conffile $CONF (only purge should)" || return 1
	echo "dpkg -r with the profile on: common-auth back to byte-identical, no stack names pam_totp.so, conffile kept"
}

c_purge() {
	needs dpkg_install || return 1
	local leftover=() f
	rm -f "/etc/pam.d/$SERVICE"
	dpkg_locked --purge "$PKG" || return 1
	! pkg_known || fail "$PKG still known to dpkg after purge" || return 1
	while IFS= read -r f; do
		[ "$f" = /. ] && continue
		if [ -d "$f" ] && [ ! -L "$f" ]; then
			# A directory that still holds something stays rightly: any
			# file of ours in it is caught on its own line. (dpkg may warn
			# that /usr/lib/<triple>/security is "not empty so not removed":
			# libpam-modules owns it under its /lib alias on merged-/usr.)
			[ -z "$(ls -A "$f")" ] && ! dpkg-query -S "$f" >/dev/null 2>&1 && leftover+=("$f")
		elif [ -e "$f" ] || [ -L "$f" ]; then
			leftover+=("$f")
		fi
	done <"$WORK/installed.list"
	for f in "$CONF" /usr/share/doc/$PKG /usr/share/pam-configs/totp "$MODULE" /usr/bin/totp-enroll; do
		[ -e "$f" ] && leftover+=("$f")
	done
	[ ${#leftover[@]} -eq 0 ] || fail "left behind: ${leftover[*]}" || return 1
	echo "no file of $PKG left ($(wc -l <"$WORK/installed.list") paths checked)"
	pam_stacks >"$WORK/pam.d.after"
	diff "$WORK/pam.d.before" "$WORK/pam.d.after" ||
		fail "/etc/pam.d differs from before the test (or another test changed it meanwhile)" || return 1
	echo "/etc/pam.d is as before ($(wc -l <"$WORK/pam.d.after") files compared)"
	if [ -d "$WORK/var-lib-pam.orig" ]; then
		if diff -r "$WORK/var-lib-pam.orig" /var/lib/pam; then
			echo "/var/lib/pam (pam-auth-update's records) is as before too"
		else
			echo "note: pam-auth-update's records in /var/lib/pam changed (above); the cleanup restores them"
		fi
	fi
}

if [ "$(id -u)" -ne 0 ]; then
	echo "FAIL: packaging test needs root (it installs the package and adds a user)"
	echo "packaging: 0 passed, 1 failed"
	exit 1
fi

check deb "make deb builds ${PKG}_${VERSION}-*_amd64.deb under target/debian with every file, conffile, profile and maintainer script" c_deb_builds
check lintian "lintian: no errors, no warnings, every override has a written reason" c_lintian
check docs "man -P cat shows no stray markup; README's marked blocks equal packaging/examples/" c_docs
check man "man --warnings renders pam_totp(8), totp-enroll(1), pam_totp.toml(5) cleanly and they document every argument, code, setting and field" c_man
check rpm "make rpm builds; rpm -qlp lists /usr/lib64/security/pam_totp.so and the man pages" c_rpm
check make_install "make install DESTDIR PREFIX stages into the distro's PAM directory; --uninstall removes it" c_make_install
check dpkg_install "dpkg -i installs the package and registers the pam-auth-update profile without enabling it" c_dpkg_install
check enroll "the installed totp-enroll --json --no-confirm, then confirm, enrols a new user" c_enroll
check login "pamtester logs in through the installed pam_totp.so (bare name) with oathtool's code and refuses its replay" c_login
check conffile "the shipped $CONF holds every setting at a default the installed totp-enroll accepts" c_conffile
check pam_auth_update "pam-auth-update --enable totp (password then code through common-auth, kept on upgrade) then --disable totp leaves /etc/pam.d/common-auth byte-identical" c_pam_auth_update
check remove "dpkg -r with the profile enabled takes pam_totp.so out of every stack and keeps the conffile" c_remove
check purge "dpkg --purge leaves no file of the package and /etc/pam.d as it was" c_purge

# Restore now rather than in the EXIT trap, so that the count is the last line.
cleanup
echo "packaging: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
