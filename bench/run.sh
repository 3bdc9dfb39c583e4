#!/bin/sh
# make bench: pam_totp against pam_google_authenticator, pam_oath and the
# pam_permit floor, through real libpam, on this machine. Prints figures and
# writes them; never fails on timing (only on a broken harness).
#
#   1. core   criterion in shared (HOTP, verify at tolerance 1 and 10, raw HMAC);
#             one backup-code attempt (argon2id), median and p99
#   2. login  per login in process (bench/pamloop.c): success and failure path
#   3. scale  success path with 1, 100 and 10 000 enrolled users
#   4. races  16 simultaneous logins with one valid code, 20 rounds
#   5. pg     the PostgreSQL store per login: PgBouncer, unix socket, TCP + SCRAM
#
# PAM service files live in a temp directory used through pam_wrapper, users
# come from nss_wrapper: /etc is never touched. Output: target/bench/
# (results.md, results.svg, raw/), copied to bench/RESULTS.md, bench/results.svg.
#
# Knobs (environment): BENCH_LOGINS (per module and path, default 1000),
# BENCH_SCALE_LOGINS (default 500), BENCH_SKIP_CORE=1, BENCH_SKIP_TOTP=1,
# BENCH_PG_LOGINS (default 500), BENCH_SKIP_PG=1.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/bench
WORK=$OUT/work
RAW=$OUT/raw
LOGINS=${BENCH_LOGINS:-1000}
SCALE_LOGINS=${BENCH_SCALE_LOGINS:-500}
BATCH=50
SEC=/usr/lib/x86_64-linux-gnu/security
CARGO=${CARGO:-cargo}

say() { printf '%s\n' "bench: $*" >&2; }
die() { say "$*"; exit 1; }

# pam_wrapper picks /tmp/pam.<c> with a racy check: serialise with the test
# harness and other runs through one lock file (flock).
LOCK=/tmp/pam-totp-tests.pam_wrapper.lock

for lib in libpam_wrapper.so libnss_wrapper.so; do
    [ -e "/usr/lib/x86_64-linux-gnu/$lib" ] || die "missing $lib (apt: libpam-wrapper libnss-wrapper)"
done
for m in pam_permit.so pam_google_authenticator.so pam_oath.so; do
    [ -e "$SEC/$m" ] || die "missing $SEC/$m (apt: libpam-modules libpam-google-authenticator libpam-oath)"
done
command -v cc >/dev/null || die "missing cc (apt: build-essential)"
command -v flock >/dev/null || die "missing flock (util-linux)"

rm -rf "$WORK" "$RAW"
mkdir -p "$OUT" "$WORK" "$RAW"
START=$(date +%s)

# ---- build -----------------------------------------------------------------
say "building bench/pamloop.c"
cc -O2 -Wall -Wextra -o "$OUT/pamloop" "$ROOT/bench/pamloop.c" -lpam -ldl
PAMLOOP=$OUT/pamloop

MODULE=$TARGET/release/libpam_totp.so
MODULES="permit totp ga oath"
if [ "${BENCH_SKIP_TOTP:-0}" = 1 ]; then
    MODULES="permit ga oath"
else
    say "building pam_totp (release)"
    if ! (cd "$ROOT" && $CARGO build --release --locked -p pam_totp >&2) || [ ! -e "$MODULE" ]; then
        say "pam_totp did not build: benchmarking the peers only"
        MODULES="permit ga oath"
    fi
fi
echo "$MODULES" > "$RAW/modules"

if [ "${BENCH_SKIP_CORE:-0}" != 1 ]; then
    say "building the criterion bench"
    (cd "$ROOT" && $CARGO bench --locked -p pam-totp-shared --bench oath --no-run >&2) || say "core bench did not build"
fi

# ---- helpers -----------------------------------------------------------------
service() { # module path -> service name
    case "$1" in
        totp) [ "$2" = bad ] && echo bench-totp-nothrottle || echo bench-totp ;;
        *) echo "bench-$1" ;;
    esac
}

restore_args() { # module dir -> pristine template, live template
    case "$1" in
        totp) echo "$2/pristine/totp/%u.toml $2/totp/%u.toml" ;;
        ga) echo "$2/pristine/ga/%u $2/ga/%u" ;;
        oath) echo "$2/pristine/oath/users $2/oath/users" ;;
        *) echo "" ;;
    esac
}

population() { # dir enrolled [accounts]
    rm -rf "$1"
    python3 "$ROOT/bench/gen.py" "$1" "$2" "$MODULE" ${3:+"$3"}
    sync # no setup writes left for a module's fsync to flush
}

pamloop() { # dir pamloop-args...
    d=$1
    shift
    flock "$LOCK" env LD_PRELOAD="libpam_wrapper.so libnss_wrapper.so" PAM_WRAPPER=1 \
        PAM_WRAPPER_SERVICE_DIR="$d/svc" NSS_WRAPPER_PASSWD="$d/passwd" NSS_WRAPPER_GROUP="$d/group" \
        "$PAMLOOP" "$@"
}

# ---- 2. per login ----------------------------------------------------------------
# N distinct users each log in once; modules take turns in batches of $BATCH
# so that load from other processes falls on all of them alike.
for path in ok bad; do
    d=$WORK/login-$path
    say "login, path $path: $LOGINS users, one login each, per module"
    population "$d" "$LOGINS"
    first=0
    while [ "$first" -lt "$LOGINS" ]; do
        n=$BATCH
        [ $((first + n)) -gt "$LOGINS" ] && n=$((LOGINS - first))
        for m in $MODULES; do
            pamloop "$d" login "$(service "$m" "$path")" "$d/users.tsv" "$path" "$first" "$n" 1 \
                >>"$RAW/login-$path-$m.txt"
        done
        # reference, no PAM: one durable small-file replace, same disk, same moment
        [ "$path" = ok ] && "$PAMLOOP" fsync "$d" "$n" >>"$RAW/durable.txt"
        first=$((first + n))
    done
done

# reference, no PAM: loading and unloading each module, as libpam does per login
for m in $MODULES; do
    case "$m" in
        totp) so=$MODULE ;;
        ga) so=$SEC/pam_google_authenticator.so ;;
        *) so=$SEC/pam_$m.so ;;
    esac
    "$PAMLOOP" dlopen "$so" 300 >"$RAW/dlopen-$m.txt"
done

# ---- 3. scale --------------------------------------------------------------------
# Same success path with 1, 100 and 10 000 enrolled users, on a system of
# 10 000 accounts in every case (nss_wrapper, like glibc's files backend,
# costs more per lookup as the user database grows; that is not the modules'
# store, so it is held constant). Each login's user state is reset from a
# pristine copy first (untimed, fsynced), so one user can log in again within
# a time step; with 10 000 enrolled users the logins are spread over the whole
# population (stride 33).
say "scale: 1, 100 and 10 000 enrolled users of 10 000 accounts, $SCALE_LOGINS logins per module each"
for n in 1 100 10000; do
    population "$WORK/scale-$n" "$n" 10000
done
# All scales and modules take turns batch by batch, so that a busy spell of
# the disk lands on every column, not on one.
first=0
while [ "$first" -lt "$SCALE_LOGINS" ]; do
    c=$BATCH
    [ $((first + c)) -gt "$SCALE_LOGINS" ] && c=$((SCALE_LOGINS - first))
    for n in 1 100 10000; do
        d=$WORK/scale-$n
        stride=1
        [ "$n" -gt "$SCALE_LOGINS" ] && stride=$((n / SCALE_LOGINS))
        for m in $MODULES; do
            # shellcheck disable=SC2046 # two words on purpose
            pamloop "$d" login "$(service "$m" ok)" "$d/users.tsv" ok $((first * stride)) "$c" "$stride" \
                $(restore_args "$m" "$d") >>"$RAW/scale-$n-$m.txt"
        done
        "$PAMLOOP" fsync "$d" "$c" >>"$RAW/scale-$n-durable.txt"
    done
    first=$((first + c))
done

# ---- 4. races --------------------------------------------------------------------
d=$WORK/scale-1
for m in $MODULES; do
    [ "$m" = permit ] && continue
    say "races: $m, 16 processes, one valid code, 20 rounds"
    # shellcheck disable=SC2046
    pamloop "$d" race "$(service "$m" ok)" "$d/users.tsv" 0 16 20 $(restore_args "$m" "$d") \
        >"$RAW/race-$m.txt"
done

# ---- 5. the PostgreSQL store ------------------------------------------------------
# A durable PostgreSQL 15 (and PgBouncer) started by the measurement itself;
# skipped when PostgreSQL is not installed. Writes $OUT/pg.md.
rm -f "$OUT/pg.md"
if [ "${BENCH_SKIP_PG:-0}" != 1 ] && [ -x /usr/lib/postgresql/15/bin/postgres ]; then
    say "postgresql store: per login through PgBouncer, unix socket, TCP + SCRAM"
    (cd "$ROOT" && PG_BENCH_LOGINS=${BENCH_PG_LOGINS:-500} $CARGO test --release --locked \
        -p pam-totp-shared --test pg_bench -- --ignored --nocapture >&2) || say "postgresql bench failed"
fi

# ---- 1. core ---------------------------------------------------------------------
# Last, so the PAM figures above are not disturbed by the compiler.
if [ "${BENCH_SKIP_CORE:-0}" != 1 ]; then
    say "core: criterion (shared/benches/oath.rs)"
    rm -rf "$OUT/criterion"
    (cd "$ROOT" && CRITERION_HOME="$OUT/criterion" $CARGO bench --locked -p pam-totp-shared --bench oath -- --noplot >&2) ||
        say "core bench failed"
    say "core: one backup-code attempt (shared/benches/backup.rs)"
    (cd "$ROOT" && $CARGO bench --locked -p pam-totp-shared --bench backup 2>/dev/null) \
        | grep '^backup' >"$RAW/backup.txt" || say "backup bench failed"
fi

# ---- report ----------------------------------------------------------------------
END=$(date +%s)
python3 "$ROOT/bench/report.py" "$OUT" "$((END - START))"
if [ -s "$RAW/backup.txt" ]; then
    {
        printf '\n## Backup codes: one attempt (argon2id, median and p99; target p99 <= 5 ms)\n\n```\n'
        cat "$RAW/backup.txt"
        printf '```\n'
    } >>"$OUT/results.md"
fi
if [ -s "$OUT/pg.md" ]; then
    printf '\n' >>"$OUT/results.md"
    cat "$OUT/pg.md" >>"$OUT/results.md"
fi
cp "$OUT/results.md" "$ROOT/bench/RESULTS.md"
cp "$OUT/results.svg" "$ROOT/bench/results.svg"
cat "$OUT/results.md"
say "done in $((END - START)) s: $OUT/results.md, $OUT/results.svg (copied to bench/)"
