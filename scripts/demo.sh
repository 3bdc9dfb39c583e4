#!/usr/bin/env bash
# The README's first command (`make demo`, which builds the workspace first):
# shows the main job of pam-totp on this machine, as root, without touching
# /etc/pam.d or anyone's home.
#
#   1. totp-enroll creates a device in a temporary directory (central mode,
#      path=<tmp>/%u.toml) and confirms it with the code an authenticator app
#      would show (computed here with oathtool, an independent implementation);
#   2. a real PAM login through the just-built pam_totp.so, with libpam run by
#      pamtester under pam_wrapper (a private service directory):
#        - the current code: accepted;
#        - the same code again: refused (replay);
#        - a wrong code: refused;
#        - one more try at once: refused without a prompt (throttled);
#      with the module's own log lines (pam_syslog) after each login.
#
# Needs: pamtester, libpam-wrapper, oathtool (see .ci/apt-packages).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
module=$target/debug/libpam_totp.so
enroll=$target/debug/totp-enroll

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (the module reads the password database and device files as root, as sshd and sudo do)"
for f in "$module" "$enroll"; do
    [ -x "$f" ] || [ -f "$f" ] || die "$f is missing: run 'make demo' (it builds first) or 'cargo build --workspace'"
done
for tool in pamtester oathtool flock; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install pamtester oathtool util-linux"
done
wrapper=$(ldconfig -p | awk '/libpam_wrapper\.so /{print $NF; exit}')
[ -n "$wrapper" ] || die "libpam_wrapper.so is missing: apt-get install libpam-wrapper"

user=$(id -un)
work=$(mktemp -d /tmp/pam-totp-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
mkdir -m 700 "$work/pam.d" "$work/devices"
devices=$work/devices/$user.toml
# The demo's own settings (the machine's /etc/security/pam_totp.toml, if
# any, plays no part): django-otp's defaults, spelt out.
settings=$work/pam_totp.toml
printf 'sync = true\nthrottle_factor = 1\nissuer = "pam-totp demo"\n' > "$settings"
chmod 644 "$settings"

printf 'auth required %s path=%s/%%u.toml config=%s\n' "$module" "$work/devices" "$settings" \
    > "$work/pam.d/totp-demo"
printf 'auth required pam_deny.so\n' > "$work/pam.d/other"

bold "1. Enroll a device for $user (totp-enroll, device file $devices)"
json=$("$enroll" add --no-confirm --json --qr none --name phone \
    --path "$devices" --config "$settings")
# One string field of totp-enroll's JSON line (hex, base32 and URLs hold no quotes).
field() { printf '%s\n' "$json" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
key=$(field key_hex)
echo "   secret for the app:  $(field secret_base32)"
echo "   otpauth URL (QR):    $(field config_url)"
code=$(oathtool --totp "$key")
echo "   the app shows $code; confirming the device with it:"
echo "$code" | "$enroll" confirm phone --json --path "$devices" --config "$settings" >/dev/null
echo "   confirmed."

# The confirmation used this step's code, and a code works once: wait for
# the app's next one.
now=$(date +%s)
wait=$((30 - now % 30))
bold "   (each code works once and the confirmation used $code: waiting ${wait} s for the next one)"
sleep "$wait"

service_line=$(cat "$work/pam.d/totp-demo")
bold "2. PAM logins through $module"
echo "   service: $service_line"

login() { # <title> <answer>
    local title=$1 answer=$2 out rc
    bold "-- $title: typing '$answer'"
    set +e
    out=$(printf '%s\n' "$answer" | flock /tmp/pam-totp-tests.pam_wrapper.lock \
        env LD_PRELOAD="$wrapper" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/pam.d" \
        PAM_WRAPPER_DEBUGLEVEL=3 pamtester totp-demo "$user" authenticate 2>&1)
    rc=$?
    set -e
    # What the user sees: prompts, messages and pamtester's verdict.
    printf '%s\n' "$out" | sed 's/Verification code: /   prompt:  "Verification code: "\n/' |
        grep -v 'PWRAP_' | sed -e '/^$/d' -e 's/^pamtester: /   result:  /' -e 's/^Too many/   message: Too many/'
    # What the module logged (pam_syslog, LOG_AUTHPRIV).
    printf '%s\n' "$out" | sed -n 's/.*SYSLOG([0-9]*): /   log:     /p'
    if [ "$rc" = 0 ]; then echo "   => ACCEPTED"; else echo "   => REFUSED"; fi
}

code=$(oathtool --totp "$key")
login "the current code" "$code"
login "the same code again (a replay)" "$code"
echo "   (a failure blocks the next attempt for 1 s, doubling with each failure)"
sleep 1.1
wrong=$(printf '%06d' $(( (10#$code + 500000) % 1000000 )))
login "a wrong code" "$wrong"
login "another code straight away (throttled: no prompt)" "$code"

bold "3. The device file afterwards (the module updated its state fields)"
sed 's/^key = .*/key = "…"   # hidden here/' "$devices" | sed 's/^/   /'
