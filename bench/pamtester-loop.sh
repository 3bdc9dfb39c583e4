#!/usr/bin/env bash
# Per-login time of pam_totp.so against pam_google_authenticator.so (Debian's
# libpam-google-authenticator), measured the way an administrator would:
# `pamtester SERVICE root authenticate` in a loop, one process per login,
# real libpam under pam_wrapper (private service files; /etc untouched), on
# this machine, in one run. pam_permit.so gives the floor (process start,
# libpam, pam_wrapper) so that the modules' own cost can be compared too.
#
# Both modules run with replay protection and the same kind of state file,
# restored before every login (hyperfine --prepare, not timed) with the
# current code computed by oathtool, so each timed login is a successful
# first use of a code: pam_totp reads, locks, verifies, fsyncs and renames
# its TOML file; pam_google_authenticator reads and rewrites its secret file
# (-d: disallow reuse). hyperfine fails if any login fails.
#
#   bench/pamtester-loop.sh            # 200 logins each (LOGINS=N to change)
#
# The logins run in ROUNDS (default 4) rounds of LOGINS/ROUNDS per module,
# the modules taking turns, so that a change in the machine's load during
# the run (shared CI runners) biases no module in particular.
#
# Needs: root, pamtester, libpam-wrapper, libpam-google-authenticator,
# oathtool, hyperfine, python3. Builds pam_totp in release mode.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
logins=${LOGINS:-200}
rounds=${ROUNDS:-4}
cargo=${CARGO:-cargo}

[ "$(id -u)" = 0 ] || { echo "pamtester-loop: run as root" >&2; exit 1; }
(cd "$root" && "$cargo" build --quiet --release -p pam_totp)
module=$target/release/libpam_totp.so

work=$(mktemp -d /tmp/pam-totp-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
mkdir -m 700 "$work/pam.d" "$work/totp" "$work/ga"

printf 'auth required pam_deny.so\n' > "$work/pam.d/other"
printf 'auth required pam_permit.so\n' > "$work/pam.d/permit"
# An empty settings file: the defaults, whatever /etc holds.
printf '# defaults\n' > "$work/settings.toml"
chmod 644 "$work/settings.toml"
printf 'auth required %s path=%s/%%u.toml config=%s/settings.toml\n' \
    "$module" "$work/totp" "$work" > "$work/pam.d/totp"
printf 'auth required pam_google_authenticator.so secret=%s/secret\n' \
    "$work/ga" > "$work/pam.d/google"

# pam_totp: one confirmed device, django-otp's defaults.
key=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
cat > "$work/totp.template" <<EOF
version = 1

[[device]]
name = "phone"
key = "$key"
confirmed = true
EOF
# pam_google_authenticator: TOTP, disallow reuse, rate limit 3 per 30 s,
# window 3 (TESTING-PAM.md's settings).
google-authenticator -t -d -f -r 3 -R 30 -w 3 -Q NONE -q -s "$work/ga.template"
secret=$(head -1 "$work/ga.template")

prep_totp="install -m 600 $work/totp.template $work/totp/root.toml && oathtool --totp $key > $work/code"
prep_ga="install -m 400 $work/ga.template $work/ga/secret && oathtool --totp -b $secret > $work/code"
prep_permit="echo 000000 > $work/code"
run() { echo "env LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=$work/pam.d pamtester $1 root authenticate < $work/code > /dev/null 2>&1"; }

# pam_wrapper is not safe in parallel: hold the lock the tests use.
exec 9> /tmp/pam-totp-tests.pam_wrapper.lock
flock 9

for round in $(seq 1 "$rounds"); do
    hyperfine --style basic --warmup 5 --runs $((logins / rounds)) \
        --export-json "$work/result-$round.json" \
        --prepare "$prep_permit" -n pam_permit "$(run permit)" \
        --prepare "$prep_totp" -n pam_totp "$(run totp)" \
        --prepare "$prep_ga" -n pam_google_authenticator "$(run google)"
done

/usr/bin/python3 - "$work" "$rounds" <<'EOF'
import json, statistics, sys
times = {}
for i in range(1, int(sys.argv[2]) + 1):
    for x in json.load(open(f"{sys.argv[1]}/result-{i}.json"))["results"]:
        times.setdefault(x["command"], []).extend(x["times"])
ms = {k: statistics.mean(v) * 1000 for k, v in times.items()}
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
n = len(times["pam_totp"])
print(f"\nper login, {n} logins each in {sys.argv[2]} rounds "
      "(pamtester under pam_wrapper; mean / median):")
for k in ("pam_permit", "pam_totp", "pam_google_authenticator"):
    print(f"  {k:26s} {ms[k]:7.2f} ms / {med[k]:7.2f} ms")
t, g, p = ms["pam_totp"], ms["pam_google_authenticator"], ms["pam_permit"]
print(f"ratio pam_totp / pam_google_authenticator, whole login: {t / g:.2f} (means), "
      f"{med['pam_totp'] / med['pam_google_authenticator']:.2f} (medians)")
if g - p > 0:
    print(f"ratio of the modules' own cost (login minus pam_permit floor): "
          f"{(t - p) / (g - p):.2f}  ({t - p:.2f} ms vs {g - p:.2f} ms)")
EOF
