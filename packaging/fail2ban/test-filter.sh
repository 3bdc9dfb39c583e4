#!/usr/bin/env bash
# Tests the fail2ban filter against log lines pam_totp.so really writes.
#
# Usage (root): packaging/fail2ban/test-filter.sh /path/to/libpam_totp.so
#
# In a private mount namespace (nothing of the machine changes), a listener
# takes the place of /dev/log; pamtester under pam_wrapper, with
# PAM_WRAPPER_USE_SYSLOG=1, runs real libpam, whose pam_syslog sends the
# module's lines there. They are written as rsyslog writes /var/log/auth.log
# and fed to fail2ban-regex (Debian package fail2ban) with
# pam-totp.filter.conf. Passes when every refusal line matches with the
# right host and no other line does. The caller serialises pam_wrapper
# (the Rust test holds its lock).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
module=${1:?usage: test-filter.sh MODULE}

if [ -z "${PAM_TOTP_F2B_NS:-}" ]; then
	exec unshare --mount --propagation private env PAM_TOTP_F2B_NS=1 "$0" "$@"
fi

for tool in fail2ban-regex pamtester python3 oathtool; do
	command -v "$tool" >/dev/null || { echo "test-filter: $tool not found" >&2; exit 2; }
done

work=$(mktemp -d /tmp/pam-totp-f2b.XXXXXX)
cleanup() {
	kill "${listener:-}" 2>/dev/null || true
	umount -l /dev 2>/dev/null || true
	umount -l "$work"/dev/* "$work/dev" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
chmod 700 "$work"
mkdir -p "$work/dev" "$work/devices" "$work/services" "$work/fail2ban/filter.d"
# Installed, the module is pam_totp.so, and pam_syslog names it so.
cp "$module" "$work/pam_totp.so"
module=$work/pam_totp.so
# The filter as installed, beside the common.conf it includes.
cp /etc/fail2ban/filter.d/common.conf "$here/pam-totp.filter.conf" "$work/fail2ban/filter.d/"
mv "$work/fail2ban/filter.d/pam-totp.filter.conf" "$work/fail2ban/filter.d/pam-totp.conf"
mount -t tmpfs tmpfs "$work/dev"
for n in null zero random urandom; do
	touch "$work/dev/$n"
	mount --bind "/dev/$n" "$work/dev/$n"
done

# The listener: one line per datagram, "<PRI>Mmm dd hh:mm:ss ident: text"
# becomes "Mmm dd hh:mm:ss HOST ident[PID]: text" (rsyslog's traditional file
# format; the pid stands for the daemon's).
python3 - "$work/dev/log" "$work/auth.log" <<'PY' &
import os, re, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
host = socket.gethostname()
with open(out, "a", buffering=1) as f:
    while True:
        data = s.recv(65536).decode("utf-8", "replace").rstrip("\n\0")
        if data == "STOP":
            break
        m = re.match(r"<\d+>(\w{3} [ \d]\d \d\d:\d\d:\d\d) ([^:\[]+)(\[\d+\])?: (.*)", data, re.S)
        if m:
            f.write(f"{m.group(1)} {host} {m.group(2)}[{os.getpid()}]: {m.group(4)}\n")
PY
listener=$!
for _ in $(seq 50); do [ -S "$work/dev/log" ] && break; sleep 0.1; done
mount --bind "$work/dev" /dev

key=3132333435363738393031323334353637383930
cat >"$work/devices/root.toml" <<TOML
version = 1

[[device]]
name = "phone"
key = "$key"
confirmed = true
TOML
chmod 600 "$work/devices/root.toml"
: >"$work/settings.toml"
chmod 644 "$work/settings.toml"
chmod 700 "$work/devices"
cat >"$work/services/sshd" <<SVC
auth required /usr/lib/x86_64-linux-gnu/pam_wrapper/pam_set_items.so
auth required $module path=$work/devices/%u.toml config=$work/settings.toml throttle_factor=3600
SVC
echo "auth required pam_deny.so" >"$work/services/other"

# login USER RHOST ANSWER
login() {
	echo "$3" | env LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_USE_SYSLOG=1 \
		PAM_WRAPPER_SERVICE_DIR="$work/services" PAM_RHOST="$2" \
		pamtester sshd "$1" authenticate >/dev/null 2>&1 || true
}
good=$(oathtool --totp "$key")
ahead=$(oathtool --totp -N "now + 90 seconds" "$key")
login root 192.0.2.99 "$good"            # accepted: no match
login root 192.0.2.10 "$ahead"           # wrong (and a clock-skew line: no match)
login root 192.0.2.10 "12345"            # throttled
login root 2001:db8::7 "$good"           # throttled
login no-such-user-pam-totp 198.51.100.20 123456 # unknown user
login nobody 203.0.113.5 123456          # not enrolled, refused
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b"STOP", sys.argv[1])' /dev/log
wait "$listener" || true

echo "--- the module's lines, as auth.log would hold them:"
cat "$work/auth.log"
echo "--- fail2ban-regex auth.log filter.d/pam-totp.conf:"
result=$(fail2ban-regex --print-all-matched --print-all-missed "$work/auth.log" "$work/fail2ban/filter.d/pam-totp.conf")
echo "$result"

fail=0
expect() { # expect DESCRIPTION COMMAND...
	if "${@:2}"; then echo "ok: $1"; else echo "FAILED: $1"; fail=1; fi
}
expect "5 refusal lines matched" grep -q "^Lines: .* 5 matched" <<<"$result"
hosts=$(fail2ban-regex --out ip "$work/auth.log" "$work/fail2ban/filter.d/pam-totp.conf" | sort | tr '\n' ' ')
echo "--- fail2ban-regex --out ip: $hosts"
expect "the hosts to ban are exactly the refused ones" \
	test "$hosts" = "192.0.2.10 192.0.2.10 198.51.100.20 2001:db8::7 203.0.113.5 "
expect "the clock-skew diagnosis line is logged and not matched" \
	grep -q "clock skew? user root, device phone: code matches step +3" "$work/auth.log"
if [ "$fail" = 0 ]; then echo "test-filter: PASS"; else echo "test-filter: FAIL"; exit 1; fi
