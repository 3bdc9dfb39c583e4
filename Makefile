# pam-totp — the two commands of the README are `make demo` and `make test`.
CARGO ?= cargo
PREFIX ?= /usr
DESTDIR ?=

.PHONY: all deps build release demo test test-rust test-packaging debian-crates lint deb rpm install man bench fuzz clean

# What `make demo` needs beyond Rust: libpam to link, pam_wrapper and
# pamtester to log in without touching /etc/pam.d, oathtool to show the code.
DEMO_PACKAGES = build-essential pkg-config libpam0g-dev libpam-wrapper pamtester oathtool

all: build

# Every Debian package and cargo tool the tests need (as root; idempotent).
deps:
	.ci/install-deps

build:
	$(CARGO) build --workspace --locked

release:
	$(CARGO) build --release --locked -p pam_totp -p totp-enroll

# Installs what it needs, builds everything and shows the main job through
# real libpam (pam_wrapper), without touching /etc/pam.d.
demo:
	.ci/install-deps $(DEMO_PACKAGES)
	$(CARGO) build --workspace --locked
	scripts/demo.sh

# Every test: unit, CLI, real libpam, sshd and sudo, then the packages.
test: deps build test-rust test-packaging

# First totp-enroll without its default `png` feature (--qr-png left out),
# then everything with the default features (which relinks the default
# totp-enroll binary the later steps use).
test-rust:
	$(CARGO) test --locked -p totp-enroll --no-default-features --bins --test cli
	$(CARGO) test --workspace --locked

test-packaging:
	packaging/test-packaging.sh

# The module and the CLI built and tested with the crate versions Debian 13
# packages (packaging/debian-13-crates.txt), in a copy of the workspace with
# its own target directory (target/debian-crates); a few minutes.
debian-crates:
	scripts/debian-crates.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p totp-enroll --all-targets --no-default-features --locked -- -D warnings

deb:
	packaging/build-deb.sh

rpm:
	packaging/build-rpm.sh

install:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" packaging/install.sh

man:
	packaging/build-man.sh

bench:
	bench/run.sh

# Every cargo-fuzz target for FUZZ_SECONDS each (default 120); stable Rust.
FUZZ_SECONDS ?= 120
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

clean:
	$(CARGO) clean
