#!/bin/bash
# dracut module "container-loader": puts the container-loader binary into the initramfs, and the
# image lists (and optionally their archives) named in a dracut.conf.d file such as
# /etc/dracut.conf.d/container-loader.conf:
#
#   CONTAINER_LOADER_LISTS="/usr/share/app/image.list"  lists to copy, blank-separated (default: none)
#   CONTAINER_LOADER_ARCHIVES=y   also copy the archives each list names, from images/ beside the
#                                 list (default: n)
#
# The same settings as the initramfs-tools hook. Installed as
# /usr/lib/dracut/modules.d/90container-loader/module-setup.sh; dracut sources this file and
# calls the functions below.

LOADER=/usr/bin/container-loader

# Included whenever the loader is installed, like the initramfs-tools hook;
# omit_dracutmodules+=" container-loader " leaves it out.
check() {
    require_binaries "$LOADER" || return 1
    return 0
}

# Nothing but the binary: it is static and talks to the engine's socket itself.
depends() {
    return 0
}

install() {
    inst_binary "$LOADER" || return 1
    local list images archive _
    for list in ${CONTAINER_LOADER_LISTS:-}; do
        if [[ ! -f $list ]]; then
            derror "container-loader: image list $list (CONTAINER_LOADER_LISTS) is missing"
            return 1
        fi
        inst_simple "$list" || return 1
        [[ ${CONTAINER_LOADER_ARCHIVES:-n} == y ]] || continue
        images="${list%/*}/images"
        # The loader's own list syntax: "ARCHIVE REF", blank lines and # comments skipped.
        while read -r archive _ || [[ -n $archive ]]; do
            case "$archive" in
                "" | "#"*) continue ;;
                */* | . | ..)
                    dwarn "container-loader: $list: \"$archive\" is not a plain file name, not copied"
                    continue
                    ;;
            esac
            if [[ -f $images/$archive ]]; then
                inst_simple "$images/$archive" || return 1
            else
                # Expected after --delete-after-load has run on this system.
                dwarn "container-loader: $images/$archive is missing, not copied"
            fi
        done <"$list"
    done
    return 0
}
