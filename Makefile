# sanmover: the one entry point. `make test` is what CI (.ci/run) runs.
#
#   make deps      Debian packages the build and the rig need (apt only if missing)
#   make build     cargo build of every target
#   make test      unit tests, then integration tests against a private tgt rig
#                  (brought up before and always down after, also on failure)
#   make demo      CLI walk-through against the rig
#   make bench     backup/restore throughput against raw peers on a private rig
#                  with a 1 GiB LUN (test-rig/README.md); fails on a missed target
#   make lint      rustfmt check and clippy with -D warnings
#   make fuzz      every cargo-fuzz target of fuzz/ for FUZZ_SECONDS each
#   make rig-up    start the tgt rig (test-rig/README.md); make rig-down stops it
#   make rig-lio-up  start Linux LIO in a QEMU guest (test-rig/README.md);
#                  make rig-lio-down stops it (not part of make test)
#   make compatibility  regenerate docs/compatibility.md from one
#                  validate --matrix run against tgt, the router and LIO
#   make clean     stop the rig, cargo clean, remove rig state

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO ?= cargo
APT_GET ?= apt-get
RIG := test-rig
DEPS := libiscsi-dev libiscsi-bin tgt sg3-utils pkg-config gcc make python3 iproute2 procps time \
	qemu-system-x86 busybox-static cpio kmod xfsprogs mount openssl

.DEFAULT_GOAL := build
.PHONY: deps build test unit-test integration-test demo bench lint fuzz rig-up rig-down rig-check rig-lio-up rig-lio-down compatibility clean

deps:
	@missing=; \
	for p in $(DEPS); do \
	  dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  echo "deps: installing$$missing"; \
	  $$sudo $(APT_GET) update; \
	  DEBIAN_FRONTEND=noninteractive $$sudo $(APT_GET) install -y $$missing; \
	else \
	  echo "deps: all packages present"; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "deps: cargo not found; install a Rust toolchain (rustup)" >&2; exit 1; }

build:
	$(CARGO) build --workspace --all-targets

# Unit tests need no target; doc tests are run here too.
unit-test:
	$(CARGO) test --workspace --lib --bins
	$(CARGO) test --workspace --doc

# Expects a running rig (SANMOVER_RIG_ENV set by test-rig/with-rig.sh).
# First a peer check of the rig itself (libiscsi tools), then every
# integration test target (tests/*.rs) of the workspace, if there is one:
# `--test '*'` fails when nothing matches, and `--tests` would rerun the
# unit tests.
integration-test:
	bash $(RIG)/tgt/check.sh
	@if $(CARGO) metadata --no-deps --format-version 1 \
	    | python3 -c 'import json,sys; m=json.load(sys.stdin); sys.exit(0 if any("test" in t["kind"] for p in m["packages"] for t in p["targets"]) else 1)'; \
	then \
	  echo "$(CARGO) test --workspace --test '*'"; \
	  $(CARGO) test --workspace --test '*'; \
	else \
	  echo "integration-test: no integration test targets in the workspace yet"; \
	fi

# with-rig.sh brings the rig down whatever happens and exits with the
# tests' status.
# The LIO guest runs the built binary as its TCMU handler (test-rig/lio).
test: unit-test
	$(CARGO) build --bin sanmover
	bash $(RIG)/with-rig.sh bash $(RIG)/with-lio.sh $(MAKE) --no-print-directory integration-test

demo: deps build
	bash $(RIG)/with-rig.sh bash $(RIG)/demo.sh

# Every part runs; the first failing status is the target's.
bench: deps
	s=0; bash $(RIG)/bench.sh || s=$$?; \
	bash $(RIG)/bench_server.sh || { r=$$?; [ $$s -ne 0 ] || s=$$r; }; \
	bash $(RIG)/bench_tape.sh || { r=$$?; [ $$s -ne 0 ] || s=$$r; }; \
	exit $$s

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# cargo-fuzz passes nightly-only rustc flags (-Z sanitizer...);
# RUSTC_BOOTSTRAP=1 lets a stable toolchain accept them. Corpora grow in
# fuzz/corpus/<target> and crashes land in fuzz/artifacts/<target> (both
# git-ignored); a crash makes `cargo fuzz run` and so this target fail.
# FUZZ_ARGS passes cargo-fuzz options, e.g. FUZZ_ARGS='--sanitizer none'.
# FUZZ_TARGETS picks targets (default: all), e.g. FUZZ_TARGETS='iscsi_pdu copy_manager'.
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
FUZZ_TARGETS ?=

fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	@targets="$(FUZZ_TARGETS)"; [ -n "$$targets" ] || targets=$$($(CARGO) fuzz list); \
	[ -n "$$targets" ] || { echo "fuzz: no fuzz targets" >&2; exit 1; }; \
	for t in $$targets; do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $(FUZZ_ARGS) "$$t" -- -max_total_time=$(FUZZ_SECONDS); \
	done

rig-up:
	bash $(RIG)/tgt/up.sh

rig-down:
	bash $(RIG)/tgt/down.sh

rig-check:
	bash $(RIG)/tgt/check.sh

# LIO in QEMU/TCG; downloads the Debian kernel into test-rig/cache/ once
# and installs its host packages if missing.
rig-lio-up:
	bash $(RIG)/lio/up.sh

rig-lio-down:
	bash $(RIG)/lio/down.sh

compatibility: build
	bash $(RIG)/with-rig.sh bash $(RIG)/with-lio.sh bash $(RIG)/compatibility.sh

clean: rig-down rig-lio-down
	$(CARGO) clean
	rm -rf $(RIG)/run
