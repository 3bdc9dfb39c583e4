#!/usr/bin/env bash
# Checks that every crate in the resolved graph of the workspace in DIR
# (default: this one) declares a rust-version the workspace's own
# rust-version can build (1.85, Debian 13's rustc): a lockfile that needs a
# newer compiler than the project says it needs is a broken promise.
# Crates that declare no rust-version are not judged. Exit 1 on any.
set -euo pipefail
dir=${1:-$(dirname "$0")/..}
cd "$dir"
cargo metadata --format-version 1 --locked | python3 -c '
import json, sys

def version(s):
    parts = [int(x) for x in s.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
msrv = max(version(p["rust_version"]) for p in meta["packages"]
           if p["id"] in members and p.get("rust_version"))
resolved = {n["id"] for n in meta["resolve"]["nodes"]}
too_new = sorted(
    (p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] in resolved and p["id"] not in members
    and p.get("rust_version") and version(p["rust_version"]) > msrv
)
shown = ".".join(map(str, msrv))
for name, ver, rv in too_new:
    print(f"msrv-lock: {name} {ver} needs rustc {rv}, newer than the workspace'"'"'s {shown}")
if too_new:
    sys.exit(1)
print(f"msrv-lock: all {len(resolved) - len(members)} locked crates build with rustc {shown}")
'
