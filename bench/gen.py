#!/usr/bin/env python3
"""Write one benchmark population: N fake users enrolled in every module.

    gen.py DIR N MODULE_SO [ACCOUNTS]

ACCOUNTS (default N) is the size of the user database: with ACCOUNTS > N,
the N enrolled users are spread evenly over the ACCOUNTS accounts, the rest
exist but are not enrolled (a 10 000-account system where 1, 100 or all have
enrolled: the user lookup costs the same in every case, only the modules'
stores grow).

DIR/ gets (all root-owned, secrets 0600, directories 0700):
  passwd, group      for nss_wrapper: root plus bench00000.. (no /etc change)
  users.tsv          name<TAB>hex key, read by pamloop to compute codes
  totp/NAME.toml     pam_totp device files, central mode (docs/design.md section 3),
                     each with its spare .NAME.toml.spare
  ga/NAME            google-authenticator secret files, the setup that
                     `google-authenticator -t -d -f -r 3 -R 30 -w 3` writes
                     (TOTP, DISALLOW_REUSE, RATE_LIMIT 3 30, 5 scratch codes)
  oath/users         pam_oath users file, every user in one file
  pristine/...       the same state files again, copied back by pamloop
                     to reset replay state between logins of one user
  svc/               PAM service files for pam_wrapper (absolute module paths)

Keys are derived from the user index, so every module sees the same key for
the same user and runs are reproducible.
"""

import base64
import hashlib
import os
import sys

SEC = "/usr/lib/x86_64-linux-gnu/security"


def write(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def mkdir(path, mode=0o700):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    root, n, module = sys.argv[1], int(sys.argv[2]), os.path.abspath(sys.argv[3])
    accounts = max(n, int(sys.argv[4]) if len(sys.argv) == 5 else n)
    gap = accounts // n
    enrolled = {k * gap + gap // 2 for k in range(n)} if accounts > n else set(range(n))
    mkdir(root, 0o755)
    for sub in ("totp", "ga", "oath", "pristine", "pristine/totp", "pristine/ga", "pristine/oath", "svc"):
        mkdir(os.path.join(root, sub), 0o755 if sub == "svc" else 0o700)

    passwd = ["root:x:0:0:root:/root:/bin/bash"]
    tsv, oath = [], []
    for i in range(accounts):
        name = f"bench{i:05d}"
        passwd.append(f"{name}:x:{20000 + i}:20000:bench user:/nonexistent/{name}:/bin/false")
        if i not in enrolled:
            continue
        key = hashlib.sha1(f"pam-totp bench key {i}".encode()).digest()
        hexkey = key.hex()
        tsv.append(f"{name}\t{hexkey}")
        oath.append(f"HOTP/T30\t{name}\t-\t{hexkey}")
        toml = (
            f"# pam-totp devices for {name}.\n"
            "version = 1\n\n[[device]]\n"
            'name = "phone"\n'
            f'key = "{hexkey}"\n'
            'algorithm = "SHA1"\ndigits = 6\nstep = 30\nt0 = 0\ntolerance = 1\n'
            "drift = 0\nlast_t = -1\nconfirmed = true\n"
            "created_at = 2026-11-28T06:13:19Z\nthrottling_failure_count = 0\n"
        )
        scratch = "".join(
            f"{int.from_bytes(hashlib.sha1(f'scratch {i} {j}'.encode()).digest()[:4], 'big') % 90000000 + 10000000}\n"
            for j in range(5)
        )
        ga = (
            base64.b32encode(key).decode().rstrip("=")
            + '\n" RATE_LIMIT 3 30\n" WINDOW_SIZE 3\n" DISALLOW_REUSE\n" TOTP_AUTH\n'
            + scratch
        )
        for base in ("", "pristine"):
            write(os.path.join(root, base, "totp", f"{name}.toml"), toml)
            write(os.path.join(root, base, "ga", name), ga)
        # The spare every device file has from its first save on (written
        # in place and swapped in by each login; docs/design.md §10), as
        # totp-enroll leaves it: a login never creates one.
        write(os.path.join(root, "totp", f".{name}.toml.spare"), toml)
    write(os.path.join(root, "passwd"), "\n".join(passwd) + "\n", 0o644)
    write(os.path.join(root, "group"), "root:x:0:\nbench:x:20000:\n", 0o644)
    write(os.path.join(root, "users.tsv"), "\n".join(tsv) + "\n", 0o644)
    for base in ("", "pristine"):
        write(os.path.join(root, base, "oath", "users"), "\n".join(oath) + "\n")

    # An empty settings file: the defaults, whatever /etc holds.
    write(os.path.join(root, "settings.toml"), "# defaults\n", 0o644)
    svc = os.path.join(root, "svc")
    services = {
        "bench-permit": f"auth required {SEC}/pam_permit.so",
        "bench-totp": f"auth required {module} path={root}/totp/%u.toml config={root}/settings.toml",
        "bench-totp-nothrottle": f"auth required {module} path={root}/totp/%u.toml config={root}/settings.toml throttle_factor=0",
        "bench-ga": f"auth required {SEC}/pam_google_authenticator.so secret={root}/ga/${{USER}} user=root",
        "bench-oath": f"auth required {SEC}/pam_oath.so usersfile={root}/oath/users window=1 digits=6",
        "other": f"auth required {SEC}/pam_deny.so",
    }
    for name, line in services.items():
        write(os.path.join(svc, name), line + "\n", 0o644)


if __name__ == "__main__":
    main()
