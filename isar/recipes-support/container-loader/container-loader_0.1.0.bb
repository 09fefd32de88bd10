# The container-loader package itself: /usr/bin/container-loader, container-loader.service,
# container-loader@.service and the drop-ins in /usr/share/container-loader/drop-ins/.
#
# dpkg-prebuilt puts the .deb that `make deb` builds into isar-apt as it is: the same bytes the
# project's CI installs and tests. Copy dist/deb/container-loader_${PV}-1_<arch>.deb next to this
# recipe (files/), or point CONTAINER_LOADER_DEB_DIR at dist/deb/. One .deb per DISTRO_ARCH
# (amd64, arm64; armhf with the binary of `make dist-armhf`).
#
# From source instead, a dpkg-raw recipe around the static binary (`make` or `make dist-armhf`,
# copied next to the recipe as files/container-loader-${DISTRO_ARCH}) and the repository:
#
#   inherit dpkg-raw
#   SRC_URI = "git://git.example.com/container-loader.git;protocol=https;branch=main;destsuffix=container-loader \
#              file://container-loader-${DISTRO_ARCH}"
#   SRCREV = "..."
#   DPKG_ARCH = "${DISTRO_ARCH}"
#   do_install() {
#       make -C ${WORKDIR}/container-loader install DESTDIR=${D} PREFIX=/usr \
#           INSTALL_BIN=${WORKDIR}/container-loader-${DISTRO_ARCH}
#   }
#
# (dpkg-raw enables no unit: image packages enable their own instances.)

DESCRIPTION = "Load the container images of image packages into docker or podman at boot"
HOMEPAGE = "https://git.example.com/container-loader"
LICENSE = "MIT"

inherit dpkg-prebuilt

# The Debian revision of the package `make deb` builds.
CONTAINER_LOADER_DEB_REVISION ?= "1"
# Where the .debs are: beside this recipe unless the build configuration says otherwise.
CONTAINER_LOADER_DEB_DIR ?= "${FILE_DIRNAME}/files"
FILESPATH:prepend = "${CONTAINER_LOADER_DEB_DIR}:"

SRC_URI = "file://container-loader_${PV}-${CONTAINER_LOADER_DEB_REVISION}_${DISTRO_ARCH}.deb"
