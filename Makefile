# pam-totp — the two commands of the README are `make demo` and `make test`.
CARGO ?= cargo
PREFIX ?= /usr
DESTDIR ?=

.PHONY: all build release demo test test-rust test-packaging lint deb rpm install man bench clean

all: build

build:
	$(CARGO) build --workspace --locked

release:
	$(CARGO) build --release --locked -p pam_totp -p totp-enroll

# Builds everything and shows the main job through real libpam (pam_wrapper),
# without touching /etc/pam.d.
demo: build
	scripts/demo.sh

# Every test: unit, CLI, real libpam, sshd and sudo, then the packages.
test: build test-rust test-packaging

test-rust:
	$(CARGO) test --workspace --locked

test-packaging:
	packaging/test-packaging.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

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

clean:
	$(CARGO) clean
