# An image package: container images fetched at build time (docker:// entries in SRC_URI),
# shipped in /usr/share/${BPN}/images/ with /usr/share/${BPN}/image.list, and loaded into the
# device's engine at every boot by ${BPN}.service until the engine has them.
#
# This class takes the place of Isar's own container-loader.bbclass (the layer's conf puts its
# classes first in BBPATH): a recipe that writes `inherit docker-loader` or `inherit
# podman-loader` builds the package Isar builds, with Isar's variables and defaults and its
# layout on the device, and one difference: ${BPN}.service runs /usr/bin/container-loader (from
# the container-loader package, which the image package depends on) instead of a shell script
# with pzstd and the engine's CLI.
#
# Isar's variables, with Isar's defaults:
#   CONTAINER_ENGINE             docker or podman (set by docker-loader / podman-loader)
#   CONTAINER_ENGINE_PACKAGES    the package's Depends besides container-loader
#   CONTAINER_DELETE_AFTER_LOAD  "1": delete each archive once its image is verified present
#   DPKG_ARCH, DEBIAN_MULTI_ARCH ${DISTRO_ARCH} and "allowed": the archives hold images of one
#                                architecture
# This layer's, opt-in:
#   CONTAINER_LOADER_COMPRESSION "" (the archives as fetched: zstd docker-archives, hard-linked),
#                                or "xz" or "gz": recompressed, named <name>:<tag>.xz or .gz; the
#                                loader reads each archive's format from its bytes
#   CONTAINER_LOADER_PACK        "1": each archive layer-framed by `container-loader pack` (a
#                                zstd frame per tar member, a member index, a seek table), still
#                                one zstd stream named <name>:<tag>.zst; zstd only, so a recipe
#                                that also sets CONTAINER_LOADER_COMPRESSION fails, naming both
#   CONTAINER_LOADER_PACK_BIN    the build host's container-loader with pack that does it
#                                (dist/container-loader-pack beside the layer: `make pack-tool`)
#   CONTAINER_LOADER_SYSTEMD_DIR where the loader's units are (the repository's systemd/):
#                                ${BPN}.service is made of them

inherit dpkg-raw

DPKG_ARCH ?= "${DISTRO_ARCH}"
DEBIAN_MULTI_ARCH ?= "allowed"

CONTAINER_DELETE_AFTER_LOAD ?= "0"
CONTAINER_LOADER_COMPRESSION ?= ""
CONTAINER_LOADER_PACK ?= "0"
# The tasks run on the build host, not in a build chroot: the device's binary has no pack (size
# budget), so the host's own build does it, which `make pack-tool` leaves in the repository.
CONTAINER_LOADER_PACK_BIN ?= "${LAYERDIR_container-loader}/../dist/container-loader-pack"

# The loader decompresses in process: no zstd on the device. The leading comma keeps a recipe's
# own DEBIAN_DEPENDS apart (Isar drops the empty item when there is none).
DEBIAN_DEPENDS += ", ${CONTAINER_ENGINE_PACKAGES}, container-loader"
# The loader's recipe deploys its package to isar-apt before this one is built, so that the
# image's rootfs finds it there: IMAGE_INSTALL needs only the image package.
DEPENDS += "container-loader"

# The unit comes from the loader's own template unit and drop-ins, so that the hardening and
# the engine bindings tested with the loader are the ones on the device.
CONTAINER_LOADER_SYSTEMD_DIR ?= "${LAYERDIR_container-loader}/../systemd"
FILESPATH:append = ":${LAYERDIR_container-loader}/recipes-support/container-loader/files:${CONTAINER_LOADER_SYSTEMD_DIR}"
SRC_URI += " \
    file://image-package-steps.sh \
    file://container-loader@.service \
    file://drop-ins/docker.conf \
    file://drop-ins/podman.conf \
    file://drop-ins/delete-after-load.conf"

# Where the steps script lands (file:// entries are unpacked into WORKDIR).
CONTAINER_STEPS = "${WORKDIR}/image-package-steps.sh"

# ${BPN}.service, made of the loader's units (do_prepare_build puts it where dh_installsystemd
# installs and enables it); the images come in do_install_fetched_containers.
do_install() {
    sh ${CONTAINER_STEPS} unit ${WORKDIR} ${BPN} ${CONTAINER_ENGINE} ${CONTAINER_DELETE_AFTER_LOAD} \
        > ${WORKDIR}/${BPN}.service
}
do_install[cleandirs] += " \
    ${D}/usr/share/${BPN} \
    ${D}/usr/share/${BPN}/images"

# CONTAINER_LOADER_PACK_BIN when CONTAINER_LOADER_PACK = "1", None otherwise; stops the build on
# a setting it cannot follow, naming it. Packing writes zstd, so another compression contradicts
# it: refused rather than one of the two silently ignored.
def container_loader_pack_bin(d, compression):
    import os

    pack = d.getVar('CONTAINER_LOADER_PACK') or "0"
    if pack not in ("0", "1"):
        bb.fatal('CONTAINER_LOADER_PACK = "%s": set "1" for layer-framed zstd archives, or "0"'
                 % pack)
    if pack == "0":
        return None
    if compression:
        bb.fatal('CONTAINER_LOADER_PACK = "1" writes zstd archives and CONTAINER_LOADER_COMPRESSION '
                 '= "%s" asks for %s: set one of the two' % (compression, compression))
    pack_bin = d.getVar('CONTAINER_LOADER_PACK_BIN')
    if not (os.path.isfile(pack_bin) and os.access(pack_bin, os.X_OK)):
        bb.fatal('CONTAINER_LOADER_PACK = "1": no program at CONTAINER_LOADER_PACK_BIN (%s): run '
                 '`make pack-tool` in container-loader\'s repository (it builds '
                 'dist/container-loader-pack, a container-loader with pack, for this build host), '
                 'or set CONTAINER_LOADER_PACK_BIN to such a container-loader' % pack_bin)
    return pack_bin

# Runs a step of the steps script; a failure stops the build with the step's own message (its
# stderr) instead of the command's exception.
def container_loader_step(d, cmd, env):
    bb.note("running: " + " ".join(cmd))
    try:
        bb.process.run(cmd, env=env)
    except bb.process.ExecutionError as e:
        bb.fatal((e.stderr or str(e)).strip())

# Isar's task, with Isar's names: each docker:// image, as the fetcher left it in WORKDIR
# (<name with / as .>:<tag>.zst, a zstd docker-archive), hard-linked into images/ and listed in
# image.list as `<file> <name>:<tag>`.
python do_install_fetched_containers() {
    import os
    from oe.path import copyhardlink

    workdir = d.getVar('WORKDIR')
    share = os.path.join(d.getVar('D'), "usr/share", d.getVar('BPN'))
    images_dir = os.path.join(share, "images")
    compression = d.getVar('CONTAINER_LOADER_COMPRESSION') or ""
    if compression not in ("", "xz", "gz"):
        bb.fatal('CONTAINER_LOADER_COMPRESSION = "%s": leave it empty for the archives as '
                 'fetched (zstd), or set "xz" or "gz"' % compression)
    pack_bin = container_loader_pack_bin(d, compression)
    # The steps' compressors take their options from Isar's XZ_DEFAULTS.
    env = dict(os.environ, IMAGE_PACKAGE_PROG=d.getVar('PN'),
               XZ_DEFAULTS=d.getVar('XZ_DEFAULTS') or "")

    lines = []
    for uri in d.getVar('SRC_URI').split():
        scheme, host, path, _, _, parm = bb.fetch.decodeurl(uri)
        if scheme != "docker":
            continue

        tag = parm["tag"] if "tag" in parm else "latest"
        image_name = host + (path if path != "/" else "")
        fetched = image_name.replace('/', '.') + ":" + tag + ".zst"
        source = os.path.join(workdir, fetched)
        if not os.path.isfile(source):
            bb.fatal("%s: the docker fetcher left no %s in WORKDIR" % (uri, fetched))

        if compression:
            image_file = fetched[:-len(".zst")] + "." + compression
            cmd = ["sh", d.getVar('CONTAINER_STEPS'), "recompress", source,
                   os.path.join(images_dir, image_file), compression]
            container_loader_step(d, cmd, env)
        elif pack_bin:
            # Still zstd, under the fetcher's name: image.list and the unit stay as they are.
            image_file = fetched
            cmd = ["sh", d.getVar('CONTAINER_STEPS'), "pack", source,
                   os.path.join(images_dir, image_file), pack_bin]
            container_loader_step(d, cmd, env)
        else:
            image_file = fetched
            copyhardlink(source, os.path.join(images_dir, image_file))

        line = f"{image_file} {image_name}:{tag}"
        bb.note(f"adding '{line}' to image.list")
        lines.append(line + "\n")

    with open(os.path.join(share, "image.list"), "w") as image_list:
        image_list.writelines(lines)
}

addtask install_fetched_containers after do_install before do_prepare_build

do_prepare_build:append() {
    # The name and the ordering after the engine that Isar's unit has, so units ordered after
    # it keep working.
    install -v -m 644 ${WORKDIR}/${BPN}.service ${S}/debian/${BPN}.service

    # Do not compress the package, most of its payload is already, and trying
    # nevertheless will only cost time without any gain.
    cat <<EOF >> ${S}/debian/rules
override_dh_builddeb:
	dh_builddeb -- -Znone
EOF
}
