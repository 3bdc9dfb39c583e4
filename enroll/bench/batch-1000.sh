#!/bin/sh
# Times `totp-enroll batch` creating one device for each of N users (default
# 1000) in per-user mode: each file in the user's home, written with that
# user's file-system identity. The users exist only in a passwd file read
# through nss_wrapper (Debian libnss-wrapper), so /etc is not touched.
#
#   sudo enroll/bench/batch-1000.sh [BINARY] [N]
#
# BINARY defaults to target/release/totp-enroll under $CARGO_TARGET_DIR or
# the workspace. Prints the wall-clock time and checks every record.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$root/target}/release/totp-enroll}
n=${2:-1000}
[ "$(id -u)" = 0 ] || { echo "run as root (files are created as each user)" >&2; exit 2; }
[ -x "$bin" ] || { echo "no binary at $bin; build it: cargo build --release -p totp-enroll" >&2; exit 2; }
lib=
for l in /usr/lib/*/libnss_wrapper.so /usr/lib64/libnss_wrapper.so /usr/lib/libnss_wrapper.so; do
    [ -e "$l" ] && lib=$l && break
done
[ -n "$lib" ] || { echo "libnss_wrapper.so not found: apt-get install libnss-wrapper" >&2; exit 2; }

dir=$(mktemp -d /tmp/totp-batch.XXXXXX)
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
mkdir "$dir/home"
: > "$dir/users"
cp /etc/passwd "$dir/passwd"
cp /etc/group "$dir/group"
i=1
while [ $i -le "$n" ]; do
    u=$(printf 'bu%04d' $i)
    uid=$((40000 + i))
    echo "$u:x:$uid:$uid::$dir/home/$u:/bin/sh" >> "$dir/passwd"
    echo "$u:x:$uid:" >> "$dir/group"
    mkdir -m 700 "$dir/home/$u"
    chown "$uid:$uid" "$dir/home/$u"
    echo "$u" >> "$dir/users"
    i=$((i + 1))
done
echo 'issuer = "Example Corp"' > "$dir/pam_totp.toml"
chmod 644 "$dir/pam_totp.toml"

start=$(date +%s%N)
LD_PRELOAD=$lib NSS_WRAPPER_PASSWD=$dir/passwd NSS_WRAPPER_GROUP=$dir/group \
    "$bin" batch --users-from "$dir/users" --config "$dir/pam_totp.toml" > "$dir/out.jsonl"
end=$(date +%s%N)

records=$(grep -c '"config_url":"otpauth://totp/Example%20Corp%3Abu' "$dir/out.jsonl")
[ "$records" -eq "$n" ] || { echo "only $records of $n records" >&2; exit 1; }
owned=0
for f in "$dir"/home/*/.config/pam_totp/devices.toml; do
    [ "$(stat -c %a "$f")" = 600 ] && [ "$(stat -c %U "$f")" != root ] && owned=$((owned + 1))
done
[ "$owned" -eq "$n" ] || { echo "only $owned of $n files are 0600 and owned by their user" >&2; exit 1; }
echo "batch: $n users, $records records, $owned files (0600, owned by each user) in $(( (end - start) / 1000000 )) ms"
