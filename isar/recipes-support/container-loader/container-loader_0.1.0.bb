# The container-loader package itself: /usr/bin/container-loader (static), its units and
# drop-ins. Image packages (inherit docker-loader / podman-loader) depend on it.
#
# dpkg-prebuilt puts the .deb that `make deb` builds into isar-apt as it is: the same bytes the
# project's CI installs and tests. Run `make deb` in the repository this layer is part of (the
# .debs land in its dist/deb/), or point CONTAINER_LOADER_DEB_DIR at a directory that holds
# container-loader_${PV}-<revision>_<arch>.deb. Where there is none for DISTRO_ARCH, the recipe
# skips itself and says why: parsing never needs a file that a clean checkout lacks.

DESCRIPTION = "Load the container images of image packages into docker or podman at boot"
HOMEPAGE = "https://git.example.com/container-loader"
LICENSE = "MIT"

inherit dpkg-prebuilt

# The Debian revision of the package `make deb` builds.
CONTAINER_LOADER_DEB_REVISION ?= "1"
# Where the .debs are: `make deb`'s output beside the layer unless the configuration says
# otherwise (local.conf, or the kas file's local_conf_header).
CONTAINER_LOADER_DEB_DIR ?= "${LAYERDIR_container-loader}/../dist/deb"
# The Debian architectures `make deb` builds a static binary for, named in the skip reason. Others
# (i386, armel, mipsel, riscv64, ...) have no Rust musl build here and no test on an engine.
CONTAINER_LOADER_ARCHS = "amd64 arm64 armhf"

CONTAINER_LOADER_DEB = "container-loader_${PV}-${CONTAINER_LOADER_DEB_REVISION}_${DISTRO_ARCH}.deb"

# Skipped, not failed, without the .deb: one reason for every DISTRO_ARCH, since bitbake may show
# the reason of another multiconfig's skip when a build asks for the recipe.
python __anonymous() {
    import os

    deb_dir = os.path.normpath(d.getVar('CONTAINER_LOADER_DEB_DIR'))
    deb = os.path.join(deb_dir, d.getVar('CONTAINER_LOADER_DEB'))
    # The recipe's parse depends on the file: bitbake parses it again once the file appears
    # (the skip is cached otherwise).
    bb.parse.mark_dependency(d, deb)
    if not os.path.isfile(deb):
        archs = d.getVar('CONTAINER_LOADER_ARCHS').split()
        raise bb.parse.SkipRecipe(
            "no %s in %s: run `make deb` in container-loader's repository (it builds the %s and "
            "%s packages; no other architecture has one), or set CONTAINER_LOADER_DEB_DIR to the "
            "directory that holds it"
            % (os.path.basename(deb), deb_dir, ", ".join(archs[:-1]), archs[-1]))

    d.prependVar('FILESPATH', deb_dir + ":")
    d.appendVar('SRC_URI', " file://" + os.path.basename(deb))
}
