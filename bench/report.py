#!/usr/bin/env python3
"""Turn the raw figures of bench/run.sh into results.md and results.svg.

    report.py OUT_DIR ELAPSED_SECONDS

Reads OUT_DIR/raw/*.txt (pamloop output) and OUT_DIR/criterion/**
(criterion's benchmark.json + estimates.json). Writes OUT_DIR/results.md and
OUT_DIR/results.svg. Targets are reported, never enforced.
"""

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

NAMES = {
    "permit": "pam_permit (floor)",
    "totp": "pam_totp",
    "ga": "pam_google_authenticator",
    "oath": "pam_oath",
}
COLORS = {"permit": "#888888", "totp": "#d62728", "ga": "#1f77b4", "oath": "#2ca02c"}
SCALES = [1, 100, 10000]
PAM_SUCCESS, PAM_AUTH_ERR = 0, 7


def read_logins(path):
    """[(us, rc, delay_us)] or None when the file is missing."""
    if not os.path.exists(path):
        return None
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                rows.append((float(parts[0]), int(parts[1]), int(parts[2]) if len(parts) > 2 else 0))
    return rows


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def stats(rows, expect_rc):
    if not rows:
        return None
    us = [r[0] for r in rows]
    return {
        "n": len(us),
        "median": statistics.median(us),
        "p99": pct(us, 99),
        "unexpected": sum(1 for r in rows if r[1] != expect_rc),
        "delay": max(r[2] for r in rows),
    }


def fmt_us(v):
    return "–" if v is None else f"{v:,.0f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "?"
    libpam = "?"
    try:
        libpam = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "libpam0g"], capture_output=True, text=True, check=False
        ).stdout.strip() or "?"
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "load": load,
        "libpam": libpam,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def criterion(outdir):
    """{(group, function, value): median ns}"""
    res = {}
    root = os.path.join(outdir, "criterion")
    for dirpath, _dirs, files in os.walk(root):
        if "benchmark.json" in files and os.path.basename(dirpath) == "new":
            try:
                with open(os.path.join(dirpath, "benchmark.json")) as f:
                    b = json.load(f)
                with open(os.path.join(dirpath, "estimates.json")) as f:
                    e = json.load(f)
            except (OSError, ValueError):
                continue
            res[(b.get("group_id"), b.get("function_id"), b.get("value_str"))] = e["median"]["point_estimate"]
    return res


def svg_plot(scale, modules):
    """Median µs per login vs enrolled users (log x), one line per module."""
    w, h, ml, mr, mt, mb = 720, 420, 70, 220, 40, 50
    pw, ph = w - ml - mr, h - mt - mb
    vals = [v for m in modules for v in scale.get(m, {}).values() if v is not None]
    ymax = max(vals) if vals else 1.0
    step = 10 ** math.floor(math.log10(ymax)) if ymax > 0 else 1
    for mult in (1, 2, 2.5, 5, 10):
        if ymax / (step * mult) <= 6:
            step *= mult
            break
    ytop = step * math.ceil(ymax / step)

    def x(n):
        return ml + pw * (math.log10(n) / math.log10(SCALES[-1]))

    def y(v):
        return mt + ph * (1 - v / ytop)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{ml + pw / 2}" y="22" text-anchor="middle" font-size="14">'
        "Per-login time (median, success path) vs enrolled users</text>",
    ]
    t = 0.0
    while t <= ytop + 1e-9:
        out.append(f'<line x1="{ml}" y1="{y(t):.1f}" x2="{ml + pw}" y2="{y(t):.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{ml - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:,.0f}</text>')
        t += step
    for n in SCALES:
        out.append(f'<line x1="{x(n):.1f}" y1="{mt}" x2="{x(n):.1f}" y2="{mt + ph}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{x(n):.1f}" y="{mt + ph + 18}" text-anchor="middle">{n:,}</text>')
    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{ml + pw / 2}" y="{h - 10}" text-anchor="middle">enrolled users (log scale)</text>')
    out.append(
        f'<text x="16" y="{mt + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {mt + ph / 2})">'
        "µs per login</text>"
    )
    ly = mt + 10
    for m in modules:
        pts = [(n, scale.get(m, {}).get(n)) for n in SCALES]
        pts = [(n, v) for n, v in pts if v is not None]
        if not pts:
            continue
        c = COLORS.get(m, "#000")
        dash = ' stroke-dasharray="5,4"' if m == "permit" else ""
        coords = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in pts)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
        for n, v in pts:
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3.5" fill="{c}"/>')
        out.append(f'<line x1="{ml + pw + 15}" y1="{ly}" x2="{ml + pw + 40}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{ml + pw + 46}" y="{ly + 4}">{NAMES[m]}</text>')
        ly += 20
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    outdir, elapsed = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0
    raw = os.path.join(outdir, "raw")
    try:
        with open(os.path.join(raw, "modules")) as f:
            modules = f.read().split()
    except OSError:
        modules = ["permit", "ga", "oath"]
    mach = machine()
    md = []
    md.append("# Benchmark results\n")
    md.append(
        f"Machine: {mach['nproc']} CPUs, {mach['cpu']}, Linux {mach['kernel']}, libpam {mach['libpam']}; "
        f"load average at the end {mach['load']} (the machine may be shared). "
        f"Run {mach['date']}, {elapsed} s in all, by `make bench` (bench/run.sh).\n"
    )
    md.append(
        "Method: `bench/pamloop.c` links libpam and times `pam_start` + `pam_authenticate` + "
        "`pam_end` in one process (module dlopen/dlclose included), answering the prompt from "
        "a conversation callback with the current TOTP code (or a wrong one). Service files sit "
        "in a temp directory read through pam_wrapper; users come from nss_wrapper; `/etc` is "
        "not touched. State files are on the same ext4 disk as the build, fsyncs are real. "
        "Failure delays requested with `pam_fail_delay` are recorded but not slept (the harness "
        "installs its own `PAM_FAIL_DELAY` function). 'load+unload alone' times `dlopen` + "
        "`dlclose` of the module with no PAM call, which libpam does once per login here and once "
        "per process (per ssh connection) in real use. Peers are Debian 12's packages: "
        "google-authenticator with `secret=DIR/${USER} user=root` and the file its own tool writes "
        "(`-t -d -f -r 3 -R 30 -w 3`: TOTP, DISALLOW_REUSE, RATE_LIMIT 3/30 s, 5 scratch codes); "
        "pam_oath with one users file, `window=1`; pam_totp in central mode "
        "`path=DIR/%u.toml` (root-owned 0600 files), failure path with `throttle_factor=0`. "
        "Logging is not in these figures: pam_wrapper takes over `pam_syslog`, and without a syslog "
        "daemon a peer's own `syslog()` fails fast. See bench/README.md for the method and a profile.\n"
    )

    # ---- disk check
    dur_all = stats(read_logins(os.path.join(raw, "durable.txt")), PAM_SUCCESS)
    if dur_all and dur_all["median"] > 1000:
        md.append(
            f"**Warning:** one durable replace took {dur_all['median']:,.0f} µs (median) during this run; "
            "on a quiet disk here it is 0.25–0.5 ms. Something else was writing: the figures of "
            "modules that fsync are inflated and their ratios unreliable.\n"
        )

    # ---- per login
    login = {}
    for path, rc in (("ok", PAM_SUCCESS), ("bad", PAM_AUTH_ERR)):
        for m in modules:
            expect = PAM_SUCCESS if m == "permit" else rc
            login[(path, m)] = stats(read_logins(os.path.join(raw, f"login-{path}-{m}.txt")), expect)
    n_ok = next((s["n"] for s in (login.get(("ok", m)) for m in modules) if s), 0)
    md.append(f"## Per login, in process (µs)\n")
    md.append(
        f"Success: {n_ok} distinct users, each logging in once with the current code. "
        "Failure: the same number of fresh users, one wrong code each, so no module's throttle or "
        "rate limit engages (pam_totp also runs with `throttle_factor=0`). "
        "'unexpected' counts logins whose PAM result was not success (resp. `PAM_AUTH_ERR`).\n"
    )
    md.append(
        "| module | success median | success p99 | failure median | failure p99 | above floor (success median) "
        "| load+unload alone (median) | unexpected |"
    )
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    floor = login.get(("ok", "permit"))
    for m in modules:
        s, f = login.get(("ok", m)), login.get(("bad", m))
        above = None if not s or not floor else s["median"] - floor["median"]
        unexpected = (s["unexpected"] if s else 0) + (f["unexpected"] if f and m != "permit" else 0)
        dl = stats(read_logins(os.path.join(raw, f"dlopen-{m}.txt")), 0)
        md.append(
            f"| {NAMES[m]} | {fmt_us(s and s['median'])} | {fmt_us(s and s['p99'])} | "
            f"{fmt_us(f and f['median'])} | {fmt_us(f and f['p99'])} | "
            f"{'–' if m == 'permit' else fmt_us(above)} | {fmt_us(dl and dl['median'])} | {unexpected} |"
        )
    dur = stats(read_logins(os.path.join(raw, "durable.txt")), PAM_SUCCESS)
    if dur:
        md.append(
            f"| *reference: one durable 400-byte replace, no PAM* (write, fsync, rename, fsync dir) | "
            f"{fmt_us(dur['median'])} | {fmt_us(dur['p99'])} | | | | | |"
        )
    delays = {m: max((login[(p, m)] or {}).get("delay", 0) for p in ("ok", "bad")) for m in modules}
    if any(delays.values()):
        md.append(
            "\nRequested failure delays (not slept): "
            + ", ".join(f"{NAMES[m]} {d / 1000:.0f} ms" for m, d in delays.items() if d)
            + "."
        )
    md.append("")
    t_ok, t_bad = login.get(("ok", "totp")), login.get(("bad", "totp"))
    dl_t = stats(read_logins(os.path.join(raw, "dlopen-totp.txt")), 0)
    dl_p = stats(read_logins(os.path.join(raw, "dlopen-permit.txt")), 0)
    if t_ok and floor and dur and dl_t and dl_p:
        above = t_ok["median"] - floor["median"]
        extra_load = dl_t["median"] - dl_p["median"]
        md.append(
            f"pam_totp's success path, {above:,.0f} µs above the floor (medians, approximate): "
            f"one durable replace ≈ {dur['median']:,.0f} µs, loading it beyond what pam_permit "
            f"costs ≈ {extra_load:,.0f} µs, the rest ≈ {above - dur['median'] - extra_load:,.0f} µs "
            "(user lookup, reading, locking, parsing, verifying, serialising, logging).\n"
        )
    if t_ok:
        md.append("| ratio pam_totp / peer | success median | success p99 | failure median | failure p99 |")
        md.append("|---|---:|---:|---:|---:|")
        for m in ("ga", "oath", "permit"):
            s, f = login.get(("ok", m)), login.get(("bad", m))
            if not s:
                continue
            md.append(
                f"| / {NAMES[m]} | {fmt_ratio(ratio(t_ok['median'], s['median']))} | "
                f"{fmt_ratio(ratio(t_ok['p99'], s['p99']))} | "
                f"{fmt_ratio(ratio(t_bad and t_bad['median'], f and f['median']))} | "
                f"{fmt_ratio(ratio(t_bad and t_bad['p99'], f and f['p99']))} |"
            )
        md.append("")

    # ---- scale
    scale = {}
    for m in modules:
        for n in SCALES:
            st = stats(read_logins(os.path.join(raw, f"scale-{n}-{m}.txt")), PAM_SUCCESS)
            scale.setdefault(m, {})[n] = st["median"] if st else None
            scale.setdefault(m + "#p99", {})[n] = st["p99"] if st else None
            scale.setdefault(m + "#bad", {})[n] = st["unexpected"] if st else None
    md.append("## Scale: success path vs enrolled users (median µs per login, p99 in brackets)\n")
    md.append(
        "The system has 10 000 accounts (nss_wrapper) in every column; 1, 100 or all of them are "
        "enrolled, spread evenly over the user database. pam_oath's users file holds every enrolled "
        "user; pam_totp and google-authenticator have one file per user. Every login's user state "
        "is first reset from a pristine copy (untimed, fsynced), so one user can log in again "
        "within a time step; with 10 000 enrolled users the logins are spread over the whole "
        "population.\n"
    )
    md.append("| module | 1 user | 100 users | 10 000 users | 10 000 / 1 | unexpected |")
    md.append("|---|---:|---:|---:|---:|---:|")
    for m in modules:
        row = [
            f"{fmt_us(scale[m][n])} ({fmt_us(scale[m + '#p99'][n])})" if scale[m][n] is not None else "–"
            for n in SCALES
        ]
        bad = sum(v for v in scale[m + "#bad"].values() if v)
        md.append(
            f"| {NAMES[m]} | {' | '.join(row)} | {fmt_ratio(ratio(scale[m][10000], scale[m][1]))} | {bad} |"
        )
    row = []
    for n in SCALES:
        st = stats(read_logins(os.path.join(raw, f"scale-{n}-durable.txt")), PAM_SUCCESS)
        row.append(f"{fmt_us(st['median'])} ({fmt_us(st['p99'])})" if st else "–")
    if any(r != "–" for r in row):
        md.append(f"| *reference: one durable replace, no PAM* | {' | '.join(row)} | | |")
    md.append("\n![per-login time vs enrolled users](results.svg)\n")

    # ---- races
    md.append("## Races: 16 simultaneous logins, one valid code, 20 rounds\n")
    md.append(
        "16 processes each `pam_start`, wait at a barrier, then `pam_authenticate` the same "
        "valid code for the same user at once; the user's state is reset before each round. "
        "Correct is exactly 1 success per round.\n"
    )
    md.append("| module | successes per round | rounds with exactly 1 | min | max |")
    md.append("|---|---|---:|---:|---:|")
    races = {}
    for m in modules:
        p = os.path.join(raw, f"race-{m}.txt")
        if not os.path.exists(p):
            continue
        with open(p) as f:
            counts = [int(line.split()[1]) for line in f if len(line.split()) == 2]
        races[m] = counts
        if counts:
            md.append(
                f"| {NAMES[m]} | {' '.join(map(str, counts))} | {sum(1 for c in counts if c == 1)}/{len(counts)} | "
                f"{min(counts)} | {max(counts)} |"
            )
    md.append("")

    # ---- core
    crit = criterion(outdir)
    core = {}
    if crit:
        md.append("## Core (criterion, shared crate; median ns per call)\n")
        md.append(
            "`hmac`: one raw HMAC over the 8-byte counter with the `hmac` crate, key set-up "
            "included. `hotp`: `shared::oath::hotp`. `verify tN`: one verification of a wrong "
            "code at tolerance N (every one of the 2N+1 candidates is hashed: the worst case), "
            "compared with (2N+1) raw HMACs.\n"
        )
        md.append("| algorithm | hmac | hotp | verify t1 | t1 / (3×hmac) | verify t10 | t10 / (21×hmac) |")
        md.append("|---|---:|---:|---:|---:|---:|---:|")
        for alg in ("SHA1", "SHA256", "SHA512"):
            h = crit.get(("core", "hmac", alg))
            o = crit.get(("core", "hotp", alg))
            v1 = crit.get(("core", "verify_t1", alg))
            v10 = crit.get(("core", "verify_t10", alg))
            r1, r10 = ratio(v1, h and 3 * h), ratio(v10, h and 21 * h)
            core[alg] = (r1, r10)
            f = lambda v: "–" if v is None else f"{v:,.0f}"  # noqa: E731
            md.append(f"| {alg} | {f(h)} | {f(o)} | {f(v1)} | {fmt_ratio(r1)} | {f(v10)} | {fmt_ratio(r10)} |")
        md.append("")

    # ---- targets
    md.append("## Targets (reported, not enforced)\n")
    md.append("| target | measured | met |")
    md.append("|---|---|---|")

    def verdict(ok):
        return "–" if ok is None else ("yes" if ok else "**no**")

    ga_ok = login.get(("ok", "ga"))
    r = ratio(t_ok and t_ok["median"], ga_ok and ga_ok["median"])
    md.append(
        f"| success path per login ≤ 0.5 × google-authenticator | {fmt_ratio(r)} | {verdict(None if r is None else r <= 0.5)} |"
    )
    if "totp" in scale:
        r = ratio(scale["totp"][10000], scale["totp"][1])
        md.append(f"| 10 000 users ≤ 1.2 × 1 user | {fmt_ratio(r)} | {verdict(None if r is None else r <= 1.2)} |")
    else:
        md.append("| 10 000 users ≤ 1.2 × 1 user | – | – |")
    if core:
        worst = max((x for pair in core.values() for x in pair if x is not None), default=None)
        md.append(
            f"| verify ≤ 2 × raw HMAC of its window | worst {fmt_ratio(worst)} | {verdict(None if worst is None else worst <= 2)} |"
        )
    else:
        md.append("| verify ≤ 2 × raw HMAC of its window | – | – |")
    rc = races.get("totp")
    md.append(
        f"| races: exactly 1 success per round (pam_totp) | "
        f"{'–' if not rc else f'{sum(1 for c in rc if c == 1)}/{len(rc)} rounds'} | "
        f"{verdict(None if not rc else all(c == 1 for c in rc))} |"
    )
    md.append("")

    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(outdir, "results.svg"), "w") as f:
        f.write(svg_plot(scale, modules))


if __name__ == "__main__":
    main()
