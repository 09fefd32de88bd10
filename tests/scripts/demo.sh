#!/usr/bin/env bash
# End-to-end demo of container-loader against a real, throwaway podman service.
#
#   tests/scripts/demo.sh [LOADER]     (LOADER defaults to target/release/container-loader)
#
# Everything lives in one temp dir: a podman store used only to make the sample archives, the store of
# the podman service the loader talks to (private socket, vfs storage), the archives and the image list.
# The service is stopped by its PID and the temp dir removed on exit, also when a step fails.
# Needs root, podman, zstd, gzip and xz (`make demo` installs them when missing).
set -euo pipefail
unset JOURNAL_STREAM # plain output lines, without the journal priority prefixes

loader=${1:-target/release/container-loader}
[[ -x $loader ]] || { echo "demo: no executable loader at $loader (run: cargo build --release)" >&2; exit 1; }
loader=$(realpath "$loader")

section() { printf '\n===== %s =====\n' "$*"; }

D=$(mktemp -d /tmp/container-loader-demo.XXXXXX)
podman_pid=
cleanup() {
    local rc=$?
    if ((rc != 0)) && [[ -s $D/podman-service.log ]]; then
        echo "--- last lines of the podman service log:" >&2
        tail -n 20 "$D/podman-service.log" >&2
    fi
    if [[ -n $podman_pid ]] && kill -0 "$podman_pid" 2>/dev/null; then
        kill "$podman_pid"
        wait "$podman_pid" 2>/dev/null || true
    fi
    # vfs storage mounts nothing, but never rm -rf through a mount point.
    if grep -q " $D/" /proc/mounts; then
        awk -v d="$D/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount -l
    fi
    rm -rf "$D"
    if ((rc == 0)); then echo "demo: cleaned up $D"; else echo "demo: FAILED (exit $rc); cleaned up $D" >&2; fi
}
trap cleanup EXIT

# Podman writes big temporary files (a load is copied to TMPDIR first): keep them inside $D too.
mkdir -p "$D/tmp" "$D/images"
export TMPDIR=$D/tmp

# podman with a private store: root/runroot for the images, --tmpdir for libpod's state (default /run/libpod,
# which other podman instances on this machine would share). Two stores: "build" only makes the sample
# archives, "service" belongs to the podman service the loader talks to and starts empty.
build_podman=(podman --root "$D/build/root" --runroot "$D/build/run" --tmpdir "$D/build/libpod" --storage-driver vfs)
service_podman=(podman --root "$D/service/root" --runroot "$D/service/run" --tmpdir "$D/service/libpod" --storage-driver vfs)

section "making sample archives in $D/images"
# A tiny root filesystem per image, imported into the build store, saved and compressed.
make_image() { # REF FORMAT(docker-archive|oci-archive) COMPRESSOR(zstd|gzip|xz|none) ARCHIVE
    local ref=$1 format=$2 compressor=$3 archive=$4 rootfs=$D/rootfs
    rm -rf "$rootfs" && mkdir -p "$rootfs/etc" "$rootfs/usr/share/demo"
    echo "$ref" >"$rootfs/usr/share/demo/name"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
    tar -C "$rootfs" -cf "$D/rootfs.tar" .
    "${build_podman[@]}" import --quiet "$D/rootfs.tar" "$ref" >/dev/null
    "${build_podman[@]}" save --quiet --format "$format" -o "$D/save.tar" "$ref"
    case $compressor in
        zstd) zstd -q -19 --rm "$D/save.tar" -o "$D/images/$archive" ;;
        gzip) gzip -n -9 -c "$D/save.tar" >"$D/images/$archive" && rm "$D/save.tar" ;;
        xz) xz -T0 -c "$D/save.tar" >"$D/images/$archive" && rm "$D/save.tar" ;;
        none) mv "$D/save.tar" "$D/images/$archive" ;;
    esac
    printf '  %-40s %-14s %-5s %s\n' "$archive" "$format" "$compressor" "$ref"
}
# Archive names as ISAR makes them (the name with '/' turned into '.'); the third one also carries the tag,
# so its name has a colon.
make_image localhost/demo/hello:1.0 docker-archive zstd localhost.demo.hello.tar.zst
make_image localhost/demo/world:2.0 oci-archive gzip localhost.demo.world.tar.gz
make_image localhost/demo/tools:3.10.2 docker-archive xz localhost.demo.tools:3.10.2.tar.xz
make_image localhost/demo/plain:latest docker-archive none localhost.demo.plain.tar
ls -l "$D/images"

list=$D/image.list
cat >"$list" <<'EOF'
# ARCHIVE REF   (archives are looked up in images/ beside this list)
localhost.demo.hello.tar.zst        localhost/demo/hello:1.0
localhost.demo.world.tar.gz         localhost/demo/world:2.0
localhost.demo.tools:3.10.2.tar.xz  localhost/demo/tools:3.10.2

# no tag: means :latest
localhost.demo.plain.tar            localhost/demo/plain
EOF
section "image list $list"
cat "$list"

section "starting a throwaway podman service on $D/podman.sock"
sock=$D/podman.sock
# Started directly (not through a function or subshell) so that $! is podman's own PID.
"${service_podman[@]}" system service --time=0 "unix://$sock" >"$D/podman-service.log" 2>&1 &
podman_pid=$!
for _ in $(seq 100); do
    [[ -S $sock ]] && break
    kill -0 "$podman_pid" 2>/dev/null || { cat "$D/podman-service.log" >&2; echo "demo: podman service died" >&2; exit 1; }
    sleep 0.1
done
[[ -S $sock ]] || { echo "demo: podman service did not create $sock" >&2; exit 1; }
echo "podman service PID $podman_pid"

# Runs the loader, shows its output, and checks its exit status and summary line.
run_loader() { # EXPECTED_SUMMARY ARGS...
    local expected=$1 rc=0; shift
    echo "\$ container-loader $*"
    "$loader" "$@" 2>"$D/out" || rc=$?
    cat "$D/out"
    echo "(exit $rc)"
    ((rc == 0)) || { echo "demo: expected exit 0" >&2; exit 1; }
    [[ $(tail -n 1 "$D/out") == "$expected" ]] || { echo "demo: expected summary \"$expected\"" >&2; exit 1; }
}

# The demo's own run directory instead of the host's /run/container-loader.
run="$D/run"

section "first run: loads the four images"
run_loader "4 loaded, 0 present, 0 failed" -l "$list" -H "unix://$sock" --run-dir "$run"

section "second run: all present, skips them (--verify: each is the archive's image)"
run_loader "0 loaded, 4 present, 0 differ, 0 failed" -l "$list" -H "unix://$sock" --run-dir "$run" --verify

section "what units that need the images see: a marker per image, status.json"
(cd "$run" && find images -type f | sort)
head -n 2 "$run/status.json"

section "status"
echo "\$ container-loader status -l $list -H unix://$sock"
"$loader" status -l "$list" -H "unix://$sock"

section "images in the service's store"
"${service_podman[@]}" images

section "demo passed"
