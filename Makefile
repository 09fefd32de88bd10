# container-loader: build, test and demo. GNU make, run as root on Debian 12: the targets install the
# Debian packages and the rustup target they need when those are missing.
#
#   make          static, stripped dist/container-loader-{x86_64,aarch64}-linux-musl
#   make dist-armhf  adds dist/container-loader-armv7-linux-musleabihf (32-bit ARM boards)
#   make pack-tool  dist/container-loader-pack: a static container-loader with `pack` for this
#                 build host, which the Isar classes run for CONTAINER_LOADER_PACK = "1"
#   make test     fmt, clippy, the import-circle check, all tests (real dockerd and podman), then
#                 the static build
#   make demo     end to end against a throwaway podman service (tests/scripts/demo.sh)
#   make bench    the static binary vs the seed script on real engines (benches/bench.rs): a table
#   make size-report  what each crate costs in the x86_64 and aarch64 binaries (cargo bloat)
#   make deps     only install the test dependencies (and build the engines root below)
#   make engines-root  target/engines/trixie: a Debian 13 root filesystem whose dockerd 26 and
#                 podman 5.4 the tests run chrooted, besides the host's; built once, then reused
#   make roots    target/roots/{bookworm,trixie}: Debian 12 and 13 with systemd, which the package
#                 tests copy and install the .debs into; built once, then reused
#   make install  DESTDIR=... PREFIX=/usr: binary, systemd units, initramfs hooks, man page, docs
#   make vm-test  a Debian 13 machine under qemu, booted four times with the loader's .deb and
#                 two image packages (tests/vm.rs); its base root, target/vm/trixie, is built
#                 once (make vm-base), then reused
#   make deb      dist/deb/container-loader_<version>_{amd64,arm64,armhf}.deb and
#                 container-loader-initramfs_<version>_all.deb, lintian-checked
#   make isar-parse-test  upstream Isar (../shared/isar/) parses its default multiconfigs with the
#                 layer first, last and absent, before and after make deb (tests/isar_parse.rs)
#   make isar-test  a real Isar build of upstream-style recipes with the layer, and its image
#                 booted four times under qemu, an upgrade from Isar's own packages among them
#                 (tests/isar_build.rs)
#   make clean

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := all
# deps and toolchain may both run apt-get, which holds a lock: never run recipes in parallel.
.NOTPARALLEL:

CARGO  ?= cargo
BIN    := container-loader
# Device binaries: dist/$(BIN)-<name>, built for the rust target beside it.
DIST_x86_64  := dist/$(BIN)-x86_64-linux-musl
DIST_aarch64 := dist/$(BIN)-aarch64-linux-musl
DIST_armhf   := dist/$(BIN)-armv7-linux-musleabihf
TARGET_x86_64  := x86_64-unknown-linux-musl
TARGET_aarch64 := aarch64-unknown-linux-musl
TARGET_armhf   := armv7-unknown-linux-musleabihf
# std is built from the rust-src component for every device binary (panic_abort with it: the
# release profile aborts on panic). rustup serves no std for the armhf target at all (it is
# built against Debian's musl for armhf, see .cargo/config.toml); for the others, a std built
# with the binary's own profile and std's optimize_for_size feature, LTO'd with the rest and
# without unwind tables (.cargo/config.toml), took the x86_64 binary from 1281 to 894 KiB with
# no loss of decoding speed (docs/install.md). -Z is nightly-only; RUSTC_BOOTSTRAP=1 lets the
# stable compiler take it, as in fuzz-smoke.
CARGO_ENV   := RUSTC_BOOTSTRAP=1
CARGO_FLAGS := -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
# Each binary must stay within this many bytes (1 MiB).
SIZE_BUDGET := 1048576
# Threads per test binary. The integration tests start real engines; the CI machine has 2 cores.
# cargo test runs with --no-fail-fast, so one run reports the failures of every test binary.
TEST_THREADS ?= 2

# "command:package" pairs; the package is installed when the command is missing.
# musl-gcc compiles zstd-sys's C code for the musl target; readelf checks the result is static.
BUILD_TOOLS := gcc:gcc musl-gcc:musl-tools readelf:binutils aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu
# armhf: the cross gcc, and musl for armhf with its wrapper around that gcc
# (arm-linux-musleabihf-gcc), a package of the armhf architecture (multiarch).
ARMHF_TOOLS := arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf arm-linux-musleabihf-gcc:musl-dev:armhf
# qemu-user runs the arm64 and armhf binaries against a real engine in `make test`.
CROSS_TEST_TOOLS := qemu-aarch64-static:qemu-user-static qemu-arm-static:qemu-user-static
RUNNER_aarch64 := qemu-aarch64-static
RUNNER_armhf   := qemu-arm-static
TEST_TOOLS  := dockerd:docker.io podman:podman zstd:zstd xz:xz-utils
# tests/units.rs: systemd-analyze verify, and the units run under a systemd in a namespace;
# tests/initramfs.rs: a real mkinitramfs build with the hook, busybox init running the loader.
TEST_TOOLS  += systemd-analyze:systemd mkinitramfs:initramfs-tools-core busybox:busybox-static
# tests/engines/hostile_archives.rs: GNU time measures the loader's peak RSS.
TEST_TOOLS  += /usr/bin/time:time
# isar/scripts/image-package (tests/image_package.rs, tests/vm.rs) builds image packages as ISAR's
# dpkg-raw does (dpkg-buildpackage, dh; fakeroot when not root) and compresses their archives;
# tests/image_package.rs runs systemctl and systemd-analyze chrooted, with a /proc of its own, and
# the ISAR include's tasks with python3 (tests/scripts/isar-include.py).
IMAGE_PACKAGE_TOOLS := dpkg-buildpackage:dpkg-dev dh:debhelper fakeroot:fakeroot zstd:zstd \
	xz:xz-utils gzip:gzip
IMAGE_PACKAGE_TEST_TOOLS := $(IMAGE_PACKAGE_TOOLS) unshare:util-linux python3:python3
TEST_TOOLS  += $(IMAGE_PACKAGE_TEST_TOOLS)
DEMO_TOOLS  := podman:podman zstd:zstd xz:xz-utils gzip:gzip
# The bench builds a Debian rootfs with mmdebstrap; the seed script needs the docker CLI and pzstd;
# GNU time measures peak RSS; curl feeds podman's load endpoint for comparison.
BENCH_TOOLS := mmdebstrap:mmdebstrap dockerd:docker.io podman:podman zstd:zstd pzstd:zstd xz:xz-utils \
	gzip:gzip /usr/bin/time:time curl:curl

# The newer engines come from Debian 13 packages, unpacked into a root filesystem that the test
# harness chroots into (tests/common/engines.rs, `engines_root`; CONTAINER_LOADER_ENGINES_ROOT points
# it elsewhere). mmdebstrap writes into a temporary directory that is renamed when complete and
# then stamped, so an interrupted build is never reused. `make clean` removes it with target/.
# The mirror mmdebstrap uses is the machine's own (the first http(s) URI of its apt sources that
# is not the security archive, as benches/bench.rs picks it): CI reaches only that one.
MIRROR = $$( { cat /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null || true; } \
	| sed -e 's/\#.*//' | tr -s ' \t' '\n\n' | awk '/^https?:/ && !/security/ { print; exit }'); \
	mirror=$${mirror:-http://deb.debian.org/debian}
ENGINES_ROOT  := target/engines/trixie
ENGINES_STAMP := $(ENGINES_ROOT).stamp
ENGINES_PACKAGES := docker.io,containerd,podman,ca-certificates
ENGINES_TOOLS := mmdebstrap:mmdebstrap unshare:util-linux

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

.PHONY: all dist-armhf deps engines-root roots toolchain test demo bench clean install fuzz-smoke \
	vm-base vm-test isar-deps isar-parse-test isar-test pack-tool

all: $(DIST_x86_64) $(DIST_aarch64)

dist-armhf: $(DIST_armhf)

# $(call static_binary,ARCH): build target $(TARGET_ARCH), copy it to $(DIST_ARCH), and check it.
# Static: no program interpreter (PT_INTERP) and no shared library (DT_NEEDED) to load at boot.
# The release profile strips: a symbol table left over means that setting was lost.
define static_binary
	$(CARGO_ENV) $(CARGO) build --release --target $(TARGET_$(1)) $(CARGO_FLAGS)
	install -D -m 0755 target/$(TARGET_$(1))/release/$(BIN) $(DIST_$(1))
	@elf=$$(readelf -lSdW $(DIST_$(1))); \
	if grep -q 'Requesting program interpreter' <<<"$$elf"; then echo "$(DIST_$(1)): has an ELF interpreter, not static" >&2; exit 1; fi; \
	if grep -q '(NEEDED)' <<<"$$elf"; then echo "$(DIST_$(1)): needs shared libraries, not static" >&2; exit 1; fi; \
	if grep -q '\.symtab' <<<"$$elf"; then echo "$(DIST_$(1)): not stripped" >&2; exit 1; fi
	@size=$$(stat -c %s $(DIST_$(1))); \
	echo "$(DIST_$(1)): static, stripped, $$size bytes ($$(( (size + 1023) / 1024 )) KiB)"; \
	if [ "$$size" -gt $(SIZE_BUDGET) ]; then echo "$(DIST_$(1)): over the $(SIZE_BUDGET)-byte budget" >&2; exit 1; fi
endef

# toolchain is phony, so these always run; cargo itself decides whether anything needs rebuilding.
$(DIST_x86_64): toolchain
	$(call static_binary,x86_64)

$(DIST_aarch64): toolchain
	$(call static_binary,aarch64)

$(DIST_armhf): toolchain
	@# musl-dev:armhf belongs to another architecture, which dpkg must know before apt-get update.
	@dpkg --print-foreign-architectures | grep -qx armhf || dpkg --add-architecture armhf
	@$(call ensure_tools,$(ARMHF_TOOLS))
	$(call static_binary,armhf)

# `make pack-tool`: dist/container-loader-pack, container-loader with `pack` (--features pack) for
# the build host's architecture, x86_64 or aarch64. The Isar classes run it where a recipe sets
# CONTAINER_LOADER_PACK = "1" (isar/README.md). Static musl like the device binaries, so that it
# runs wherever bitbake runs, kas-container included; no size budget (it never reaches a device),
# so std is rustup's. Its own target directory keeps the device builds' artifacts, which share
# the target triple, from being rebuilt.
PACK_TOOL     := dist/$(BIN)-pack
PACK_TOOL_DIR := target/pack-tool
HOST_ARCH     := $(shell uname -m)

pack-tool: toolchain
	@[ -n "$(TARGET_$(HOST_ARCH))" ] || { echo "pack-tool: no build for a $(HOST_ARCH) host (x86_64 or aarch64)" >&2; exit 1; }
	$(CARGO) build --release --features pack --target $(TARGET_$(HOST_ARCH)) --target-dir $(PACK_TOOL_DIR)
	install -D -m 0755 $(PACK_TOOL_DIR)/$(TARGET_$(HOST_ARCH))/release/$(BIN) $(PACK_TOOL)
	./$(PACK_TOOL) pack --help >/dev/null

deps: engines-root roots
	@$(call ensure_tools,$(TEST_TOOLS))

engines-root: $(ENGINES_STAMP)

$(ENGINES_STAMP):
	@$(call ensure_tools,$(ENGINES_TOOLS))
	@# --one-file-system: never into a mount someone left inside an old root (its /dev, /sys).
	rm -rf --one-file-system $(ENGINES_ROOT).tmp $(ENGINES_ROOT)
	mkdir -p $(dir $(ENGINES_ROOT))
	mirror=$(MIRROR); \
	echo "engines root: Debian 13 from $$mirror"; \
	mmdebstrap --variant=apt --include=$(ENGINES_PACKAGES) trixie $(ENGINES_ROOT).tmp "$$mirror"
	mv $(ENGINES_ROOT).tmp $(ENGINES_ROOT)
	touch $@

# Debian 12 and 13 root filesystems with systemd (dpkg, deb-systemd-helper, systemd-analyze) that
# the package tests copy and install the .debs into (tests/deb.rs, tests/image_package.rs). Built
# as the engines root is: into a temporary directory, renamed when complete, then stamped.
ROOTS_DIR      := target/roots
ROOTS_SUITES   := bookworm trixie
ROOTS_PACKAGES := systemd
ROOTS_STAMPS   := $(ROOTS_SUITES:%=$(ROOTS_DIR)/%.stamp)

roots: $(ROOTS_STAMPS)

$(ROOTS_DIR)/%.stamp:
	@$(call ensure_tools,$(ENGINES_TOOLS))
	rm -rf --one-file-system $(ROOTS_DIR)/$*.tmp $(ROOTS_DIR)/$*
	mkdir -p $(ROOTS_DIR)
	mirror=$(MIRROR); \
	echo "package test root: Debian $* from $$mirror"; \
	mmdebstrap --variant=minbase --include=$(ROOTS_PACKAGES) $* $(ROOTS_DIR)/$*.tmp "$$mirror"
	mv $(ROOTS_DIR)/$*.tmp $(ROOTS_DIR)/$*
	touch $@

# `make vm-test` (tests/vm.rs): a Debian 13 machine booted under qemu, four times, with the
# loader's .deb and two image packages built by isar/scripts/image-package installed. Its base
# root filesystem (kernel, systemd, docker.io and its CLI, podman, apparmor, which the docker
# image package depends on; dbus, which both engines' systemd cgroup drivers talk to) is built
# as the engines root is and reused; each run copies it, installs the packages with dpkg and
# makes an ext4 disk image of the copy with mkfs.ext4 -d (no loop mount). Results are read back
# out of the disk image with debugfs after power-off; the units' times go to $(VM_DIR)/blame.txt.
VM_DIR       := target/vm
VM_BASE      := $(VM_DIR)/trixie
VM_STAMP     := $(VM_BASE).stamp
VM_PACKAGES  := linux-image-amd64,systemd-sysv,udev,dbus,kmod,podman,crun,docker.io,docker-cli,containerd,apparmor
# busybox-static: the program of the images the example apps run.
VM_TOOLS     := mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 mkfs.ext4:e2fsprogs \
	debugfs:e2fsprogs busybox:busybox-static unshare:util-linux $(IMAGE_PACKAGE_TOOLS)
# The machine's fstab and hostname; the rest of its setup is the test's, per run.
VM_CUSTOMIZE := --customize-hook='echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > "$$1/etc/fstab"' \
	--customize-hook='echo container-loader-vm > "$$1/etc/hostname"'

$(VM_STAMP):
	@$(call ensure_tools,$(VM_TOOLS))
	rm -rf --one-file-system $(VM_BASE).tmp $(VM_BASE)
	mkdir -p $(VM_DIR)
	mirror=$(MIRROR); \
	echo "vm base root: Debian 13 from $$mirror"; \
	mmdebstrap --variant=apt --include=$(VM_PACKAGES) $(VM_CUSTOMIZE) trixie $(VM_BASE).tmp "$$mirror"
	mv $(VM_BASE).tmp $(VM_BASE)
	touch $@

vm-base: $(VM_STAMP)

# The boots share one disk image, in order: one test at a time. --nocapture: the boot times and
# the blame figures are printed as they come. Only the amd64 package is built (as `make deb`
# builds it): the machine is amd64.
vm-test: $(VM_STAMP) $(DIST_x86_64)
	@$(call ensure_tools,$(VM_TOOLS) $(DEB_TOOLS))
	$(call deb_package,amd64)
	CONTAINER_LOADER_BIN=$(DIST_x86_64) CONTAINER_LOADER_VM_BASE=$(VM_BASE) \
		CONTAINER_LOADER_DEB=$(DEB_DIR)/$(BIN)_$(DEB_VERSION)_amd64.deb \
		$(CARGO) test --test vm -- --ignored --test-threads=1 --nocapture

# The Isar tests (tests/isar_parse.rs, tests/isar_build.rs) run upstream Isar from
# ../shared/isar/ (CONTAINER_LOADER_ISAR_TARBALL names another snapshot) as its user manual asks:
# its host packages, the en_US.UTF-8 locale bitbake insists on, and an unprivileged build user
# with passwordless sudo in group sbuild (Isar's sbuild steps fail as root). Its sites live in
# ISAR_WORK, outside the repository, which may sit where that user cannot read (under /root).
# skopeo makes the seeded downloads as Isar's docker fetcher makes them; qemu boots the image;
# mkfs.ext4 and debugfs carry the probe's data disk.
ISAR_WORK     ?= /var/tmp/container-loader-isar
ISAR_BUILDER  := isarbuild
# Isar's user manual's host packages (python3-distutils left out: nothing in this Isar imports it),
# as "command:package" pairs.
ISAR_TOOLS := update-binfmts:binfmt-support bwrap:bubblewrap bzip2:bzip2 mmdebstrap:mmdebstrap \
	arch-test:arch-test apt-ftparchive:apt-utils dpkg-buildpackage:dpkg-dev envsubst:gettext-base \
	git:git python3:python3 quilt:quilt qemu-aarch64-static:qemu-user-static reprepro:reprepro \
	sudo:sudo unzip:unzip xz:xz-utils gbp:git-buildpackage pristine-tar:pristine-tar sbuild:sbuild \
	schroot:schroot zstd:zstd skopeo:skopeo locale-gen:locales \
	qemu-system-x86_64:qemu-system-x86 debugfs:e2fsprogs busybox:busybox-static
ISAR_ENV      := CONTAINER_LOADER_ISAR_WORK=$(ISAR_WORK)

isar-deps:
	@$(call ensure_tools,$(ISAR_TOOLS))
	@locale -a | grep -qx 'en_US.utf8' || localedef -i en_US -f UTF-8 en_US.UTF-8
	@id -u $(ISAR_BUILDER) >/dev/null 2>&1 || useradd --create-home --shell /bin/bash $(ISAR_BUILDER)
	@usermod -a -G sbuild $(ISAR_BUILDER)
	@echo '$(ISAR_BUILDER) ALL=(ALL:ALL) NOPASSWD:ALL' > /etc/sudoers.d/$(ISAR_BUILDER)
	@chmod 0440 /etc/sudoers.d/$(ISAR_BUILDER)
	@mkdir -p $(ISAR_WORK) && chown $(ISAR_BUILDER): $(ISAR_WORK)

# One parse at a time: each takes both cores. --nocapture: the parse summaries are printed.
isar-parse-test: deb isar-deps
	$(ISAR_ENV) $(CARGO) test --test isar_parse -- --ignored --test-threads=1 --nocapture

# The build's and the boots' times are printed as they come (--nocapture).
isar-test: deb pack-tool isar-deps
	$(ISAR_ENV) $(CARGO) test --test isar_build -- --ignored --test-threads=1 --nocapture

# Everything `all` needs besides cargo: the C tools and the rustup musl target.
# The rustup targets still give the musl start files and libc.a that rust-lld links (their
# "self-contained" directory); std itself comes from rust-src.
toolchain:
	@$(call ensure_tools,$(BUILD_TOOLS))
	@for t in $(TARGET_x86_64) $(TARGET_aarch64); do \
		rustup target list --installed | grep -qx "$$t" || rustup target add "$$t"; \
	done
	@rustup component list --installed | grep -qx rust-src || rustup component add rust-src

# $(call cross_test,ARCH): tests/cross.rs on $(DIST_ARCH), which must name $(TARGET_ARCH) in its
# version, run by $(RUNNER_ARCH).
define cross_test
	CONTAINER_LOADER_BIN=$(DIST_$(1)) CONTAINER_LOADER_BIN_TARGET=$(TARGET_$(1)) \
		CONTAINER_LOADER_RUNNER=$(RUNNER_$(1)) $(CARGO) test --test cross -- --ignored
endef

test: deps toolchain deb
	@# rustfmt and clippy are in rustup's default profile, but not in the minimal one.
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
	@# --all and --workspace: the package and tests/kit, the tests' in-memory archives.
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@# `pack` (build hosts only, Cargo.toml [features]) is code the device build leaves out.
	$(CARGO) clippy --features pack --all-targets -- -D warnings
	@# No import circle in src/ (tests/import_cycles.rs), before the long run.
	$(CARGO) test --test import_cycles
	$(MAKE) --no-print-directory all dist-armhf
	@# The integration tests run the shipped static binary, not the debug build.
	CONTAINER_LOADER_BIN=$(DIST_x86_64) $(CARGO) test --no-fail-fast -- --test-threads=$(TEST_THREADS)
	@# pack's frame layout, and its archives read by the shipped binary (which has no pack):
	@# loaded, verified and sent without held layers (packed::), damaged tables (framed::).
	$(CARGO) test --features pack --lib commands::pack
	@# Python's zstandard reads packed archives too (tests/pack.rs), Debian's module.
	@/usr/bin/python3 -c 'import zstandard' 2>/dev/null || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-zstandard; }
	CONTAINER_LOADER_BIN=$(DIST_x86_64) $(CARGO) test --features pack --test pack
	@# The Isar classes' pack step (CONTAINER_LOADER_PACK) with that build.
	$(CARGO) test --features pack --test image_package -- the_pack_step
	CONTAINER_LOADER_BIN=$(DIST_x86_64) $(CARGO) test --features pack --test engines \
		-- --test-threads=$(TEST_THREADS) packed:: framed::
	@$(call ensure_tools,$(CROSS_TEST_TOOLS))
	@# The arm64 and armhf binaries under qemu-user against a real podman (tests/cross.rs).
	$(call cross_test,aarch64)
	$(call cross_test,armhf)
	./$(DIST_x86_64) --version
	$(RUNNER_aarch64) $(DIST_aarch64) --version
	$(RUNNER_armhf) $(DIST_armhf) --version

# The demo uses the host's release build; `tests/scripts/demo.sh PATH` runs it with another binary.
demo:
	@$(call ensure_tools,$(DEMO_TOOLS))
	$(CARGO) build --release
	bash tests/scripts/demo.sh target/release/$(BIN)

# Not a test: prints a table of medians (docs/performance.md); archives are cached in target/bench/.
# `--features pack`: the bench's own build of the binary packs the layer-framed archives it
# compares (the device binary, which it measures, has no encoder).
bench: $(DIST_x86_64)
	@$(call ensure_tools,$(BENCH_TOOLS))
	CONTAINER_LOADER_BIN=$(DIST_x86_64) $(CARGO) bench --features pack --bench bench

# `make install DESTDIR=/tmp/root PREFIX=/usr` lays out a device's files under DESTDIR. The binary
# is the static x86_64 build unless INSTALL_BIN names another one (INSTALL_BIN=$(DIST_aarch64)
# for an arm64 image). Units, hooks and the dracut module name the binary as
# $(BINDIR)/$(BIN) (sed, when PREFIX is not /usr); the hook and module paths are fixed by
# initramfs-tools and dracut, the unit directory by Debian.
PREFIX  ?= /usr
BINDIR  ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR  ?= $(DATADIR)/man
DOCDIR  ?= $(DATADIR)/doc/$(BIN)
SYSTEMD_UNIT_DIR   ?= /lib/systemd/system
INITRAMFS_HOOK_DIR ?= /usr/share/initramfs-tools/hooks
DRACUT_MODULE_DIR  ?= /usr/lib/dracut/modules.d/90$(BIN)
INSTALL_BIN ?= $(DIST_x86_64)

# $(call install_file,MODE,SRC,DEST): copy SRC to $(DESTDIR)DEST with the binary's path set.
define install_file
	sed 's|/usr/bin/$(BIN)|$(BINDIR)/$(BIN)|g' $(2) | install -D -m $(1) /dev/stdin $(DESTDIR)$(3)
endef

install: $(INSTALL_BIN)
	install -D -m 0755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/$(BIN)
	$(call install_file,0644,systemd/$(BIN).service,$(SYSTEMD_UNIT_DIR)/$(BIN).service)
	$(call install_file,0644,systemd/$(BIN)@.service,$(SYSTEMD_UNIT_DIR)/$(BIN)@.service)
	@# Drop-ins a package or an administrator links into <unit>.service.d/ (docs/install.md).
	for f in systemd/drop-ins/*.conf; do \
		install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/$(BIN)/drop-ins/$${f##*/}"; \
	done
	$(call install_file,0755,initramfs/initramfs-tools/hooks/$(BIN),$(INITRAMFS_HOOK_DIR)/$(BIN))
	$(call install_file,0755,initramfs/dracut/90$(BIN)/module-setup.sh,$(DRACUT_MODULE_DIR)/module-setup.sh)
	install -D -m 0644 man/$(BIN).8 $(DESTDIR)$(MANDIR)/man8/$(BIN).8
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	for f in docs/*.md; do install -D -m 0644 "$$f" "$(DESTDIR)$(DOCDIR)/docs/$${f##*/}"; done
	@# The inittab and rcS for images without systemd, the initramfs-tools and dracut settings,
	@# and an application unit that waits for its image.
	for f in initramfs/examples/* systemd/examples/*; do \
		$(call install_file,0644,"$$f","$(DOCDIR)/examples/$${f##*/}"); \
	done

# `make deb`: dist/deb/container-loader_<version>_<arch>.deb for amd64, arm64 and armhf, the
# Debian way (debian/: debhelper, compat 13) but from the static binaries above: debian/rules
# compiles nothing and lays the files out with `make install`. The version is debian/changelog's
# (tests/deb.rs checks it against Cargo.toml's). Each package goes through lintian: an error fails
# the target; the warnings kept are overridden, with their reasons, in debian/*.lintian-overrides.
# Nothing is written outside the repository: dh_builddeb writes into DEB_DIR, not `..`.
DEB_DIR     := dist/deb
DEB_VERSION  = $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
DEB_ARCHS   := amd64 arm64 armhf
# The binary each Debian architecture's package holds.
DEB_BIN_amd64 := $(DIST_x86_64)
DEB_BIN_arm64 := $(DIST_aarch64)
DEB_BIN_armhf := $(DIST_armhf)
DEB_TOOLS   := dh:debhelper dpkg-architecture:dpkg-dev lintian:lintian
# Rules-Requires-Root: no (debian/control), which dpkg-buildpackage would export: dh_builddeb
# makes the files root's without fakeroot. nocheck: there is no test step to run, and dh warns
# about one in a cross build.
DEB_ENV     := DEB_RULES_REQUIRES_ROOT=no DEB_BUILD_OPTIONS=nocheck

# $(call deb_package,ARCH): build and lintian-check the package of Debian architecture ARCH.
define deb_package
	debian/rules clean >/dev/null
	$(DEB_ENV) dpkg-architecture -a $(1) -c debian/rules binary-arch \
		CONTAINER_LOADER_BIN=$(DEB_BIN_$(1)) DEB_OUT_DIR=$(DEB_DIR)
	debian/rules clean >/dev/null
	lintian --fail-on error $(DEB_DIR)/$(BIN)_$(DEB_VERSION)_$(1).deb

endef

# The initramfs hooks' package (container-loader-initramfs, Architecture: all): built once, from
# `make install` like the rest (any architecture's binary serves: the package leaves it out).
define deb_indep_package
	debian/rules clean >/dev/null
	$(DEB_ENV) debian/rules binary-indep CONTAINER_LOADER_BIN=$(DIST_x86_64) DEB_OUT_DIR=$(DEB_DIR)
	debian/rules clean >/dev/null
	lintian --fail-on error $(DEB_DIR)/$(BIN)-initramfs_$(DEB_VERSION)_all.deb
endef

# `make image-package-test`: tests/image_package.rs alone (`make test` runs it among the rest):
# image packages built with isar/scripts/image-package, installed beside the loader's .deb into
# copies of the Debian 13 root.
.PHONY: image-package-test
image-package-test: roots deb
	@$(call ensure_tools,$(IMAGE_PACKAGE_TEST_TOOLS))
	CONTAINER_LOADER_BIN=$(DIST_x86_64) $(CARGO) test --test image_package -- --test-threads=$(TEST_THREADS)
	@# The pack step (CONTAINER_LOADER_PACK) packs with a build that has pack.
	$(CARGO) test --features pack --test image_package -- the_pack_step

.PHONY: deb
deb: $(foreach a,$(DEB_ARCHS),$(DEB_BIN_$(a)))
	@$(call ensure_tools,$(DEB_TOOLS))
	rm -rf $(DEB_DIR)
	$(foreach a,$(DEB_ARCHS),$(call deb_package,$(a)))
	$(call deb_indep_package)
	@ls -l $(DEB_DIR)

# `make size-report`: what each crate costs in the device binaries (README.md, "What the binary
# is made of"). Each SIZE_REPORT_ARCHS binary is built as `make` builds it (same target, release
# profile and build-std flags) but not stripped, in target/bloat/, and cargo bloat attributes its
# code (.text) to crates by symbol name. Under fat LTO that is a guess: generic and inlined code
# counts for the crate that instantiates it (mostly container_loader), and a crate can be named
# for code that is core's. C symbols name no crate; they are told apart here by name: zstd's
# decoder (ZSTD_, HUF_, FSE_, XXH...; cargo bloat puts part of it under zstd_sys), libunwind
# (std's backtrace walker, linked although nothing unwinds) and the rest, musl's libc. Rows under
# 1 KiB are summed as "others". What removing a dependency saves: a build without it (README.md).
SIZE_REPORT_ARCHS ?= x86_64 aarch64
SIZE_REPORT_TOOLS := jq:jq
SIZE_REPORT_DIR   := target/bloat
SIZE_REPORT_JQ := \
	def fixed(w): (. * 10 | round | tostring) as $$d | (if ($$d | length) < 2 then "0" + $$d else $$d end) \
		| .[:-1] + "." + .[-1:] | " " * (w - length) + .; \
	.["text-section-size"] as $$text \
	| [ .functions[] | { size, crate: ( \
		if (.crate == "zstd_sys") or (.crate == null and (.name | test("^(ZSTD|HUF|FSE|HIST|ERR|BIT|POOL)_|XXH"))) \
			then "zstd decoder (C, zstd-sys)" \
		elif .crate == null and (.name | test("libunwind|_Unwind|__unw_")) then "libunwind (C++)" \
		elif .crate == null then "musl libc (C)" \
		else .crate end) } ] \
	| group_by(.crate) | map({ crate: .[0].crate, size: (map(.size) | add) }) \
	| (map(select(.size >= 1024)) | sort_by(-.size)) \
		+ [{ crate: "others", size: (map(select(.size < 1024).size) | add // 0) }] \
	| "   KiB   .text  crate", \
	  (.[] | "\(.size / 1024 | fixed(6))  \(.size * 100 / $$text | fixed(5))%  \(.crate)"), \
	  "\($$text / 1024 | fixed(6))  100.0%  .text, functions and padding"

# $(call size_report,ARCH): the table for $(TARGET_ARCH).
define size_report
	CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$(SIZE_REPORT_DIR) $(CARGO_ENV) \
		$(CARGO) bloat --release --target $(TARGET_$(1)) $(CARGO_FLAGS) -n 0 --message-format json \
		>$(SIZE_REPORT_DIR)/$(TARGET_$(1)).json
	@echo "== $(TARGET_$(1)): code (.text) by crate, cargo bloat $$($(CARGO) bloat --version | cut -d' ' -f2)"
	@jq -r '$(SIZE_REPORT_JQ)' $(SIZE_REPORT_DIR)/$(TARGET_$(1)).json

endef

.PHONY: doc
# `make doc`: the code's documentation, private items included (they are most of it), in
# target/doc/container_loader/.
doc: toolchain
	$(CARGO) doc --no-deps --document-private-items --features pack

.PHONY: size-report
size-report: toolchain
	@$(call ensure_tools,$(SIZE_REPORT_TOOLS))
	@$(CARGO) bloat --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-bloat
	@mkdir -p $(SIZE_REPORT_DIR)
	$(foreach a,$(SIZE_REPORT_ARCHS),$(call size_report,$(a)))

# `make fuzz-smoke`: each cargo-fuzz target in fuzz/ for FUZZ_SECONDS, under AddressSanitizer and
# with debug assertions, from the seeds in fuzz/corpus/<target>/ and fuzz/regressions/<target>/;
# new inputs go to fuzz/run-corpus/ (git-ignored). -Zsanitizer is nightly-only: RUSTC_BOOTSTRAP=1
# lets the stable compiler take it. A panic, crash, hang (-timeout, seconds) or allocation above
# -malloc_limit_mb fails the target; the others still run. The input is left in
# fuzz/artifacts/<target>/: keep it in fuzz/regressions/<target>/ for tests/fuzz_regressions.rs.
# "target:max_len" pairs; a list line may be 4096 bytes, a tar seed is 10 KiB; description files
# (JSON split into files) get room for a 1,000-item manifest; marker_name: two references.
FUZZ_TARGETS := list_parser:8192 reference:1024 decoders:16384 answer_stream:4096 manifest_walk:16384 \
	description_files:65536 marker_name:1024 framed:16384
FUZZ_SECONDS ?= 45
FUZZ_RUN := RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz --debug-assertions

fuzz-smoke:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	@failed=; \
	for pair in $(FUZZ_TARGETS); do \
		t=$${pair%%:*}; \
		mkdir -p fuzz/run-corpus/$$t; \
		seeds=fuzz/corpus/$$t; \
		if [ -d fuzz/regressions/$$t ]; then seeds="$$seeds fuzz/regressions/$$t"; fi; \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		$(FUZZ_RUN) $$t fuzz/run-corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECONDS) \
			-max_len=$${pair#*:} -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 \
			-print_final_stats=1 || failed="$$failed $$t"; \
		echo "== $$t: run corpus $$(ls fuzz/run-corpus/$$t | wc -l) inputs"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz-smoke: failed:$$failed (inputs in fuzz/artifacts/)" >&2; exit 1; fi

clean:
	$(CARGO) clean
	rm -rf dist
	rm -rf --one-file-system $(ISAR_WORK)
