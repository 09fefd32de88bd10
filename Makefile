# container-loader: build, test and demo. GNU make, run as root on Debian 12: the targets install the
# Debian packages and the rustup target they need when those are missing.
#
#   make          static, stripped dist/container-loader-x86_64-linux-musl
#   make test     fmt, clippy, all tests (real dockerd and podman), then the static build
#   make demo     end to end against a throwaway podman service (tests/scripts/demo.sh)
#   make deps     only install the test dependencies
#   make clean

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := all
# deps and toolchain may both run apt-get, which holds a lock: never run recipes in parallel.
.NOTPARALLEL:

CARGO  ?= cargo
TARGET := x86_64-unknown-linux-musl
BIN    := container-loader
DIST   := dist/$(BIN)-x86_64-linux-musl
# Threads per test binary. The integration tests start real engines; the CI machine has 2 cores.
# cargo test runs with --no-fail-fast, so one run reports the failures of every test binary.
TEST_THREADS ?= 2

# "command:package" pairs; the package is installed when the command is missing.
# musl-gcc compiles zstd-sys's C code for the musl target; readelf checks the result is static.
BUILD_TOOLS := gcc:gcc musl-gcc:musl-tools readelf:binutils
TEST_TOOLS  := dockerd:docker.io podman:podman zstd:zstd xz:xz-utils
DEMO_TOOLS  := podman:podman zstd:zstd xz:xz-utils gzip:gzip

# $(call ensure_tools,PAIRS): apt-get install the packages of the missing commands, all at once;
# apt-get update runs only when something must be installed.
define ensure_tools
missing=; \
for pair in $(1); do \
	command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
done; \
if [ -n "$$missing" ]; then \
	echo "installing:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -q; \
	apt-get install -y -q $$missing; \
fi
endef

.PHONY: all deps toolchain test demo clean

all: $(DIST)

# toolchain is phony, so this always runs; cargo itself decides whether anything needs rebuilding.
$(DIST): toolchain
	$(CARGO) build --release --target $(TARGET)
	install -D -m 0755 target/$(TARGET)/release/$(BIN) $@
	@# Static: no program interpreter (PT_INTERP) and no shared library (DT_NEEDED) to load at boot. The
	@# release profile strips: a symbol table left over means that setting was lost.
	@elf=$$(readelf -lSdW $@); \
	if grep -q 'Requesting program interpreter' <<<"$$elf"; then echo "$@: has an ELF interpreter, not static" >&2; exit 1; fi; \
	if grep -q '(NEEDED)' <<<"$$elf"; then echo "$@: needs shared libraries, not static" >&2; exit 1; fi; \
	if grep -q '\.symtab' <<<"$$elf"; then echo "$@: not stripped" >&2; exit 1; fi
	@size=$$(stat -c %s $@); echo "$@: static, stripped, $$size bytes ($$(( (size + 1023) / 1024 )) KiB)"

deps:
	@$(call ensure_tools,$(TEST_TOOLS))

# Everything `all` needs besides cargo: the C tools and the rustup musl target.
toolchain:
	@$(call ensure_tools,$(BUILD_TOOLS))
	@rustup target list --installed | grep -qx '$(TARGET)' || rustup target add $(TARGET)

test: deps toolchain
	@# rustfmt and clippy are in rustup's default profile, but not in the minimal one.
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --no-fail-fast -- --test-threads=$(TEST_THREADS)
	$(MAKE) --no-print-directory all
	./$(DIST) --version

# The demo uses the host's release build; `tests/scripts/demo.sh PATH` runs it with another binary.
demo:
	@$(call ensure_tools,$(DEMO_TOOLS))
	$(CARGO) build --release
	bash tests/scripts/demo.sh target/release/$(BIN)

clean:
	$(CARGO) clean
	rm -rf dist
