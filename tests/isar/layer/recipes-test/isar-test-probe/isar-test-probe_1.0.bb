# The test machine's side of tests/isar_build.rs: two applications ordered after the image
# packages' units, as an Isar user orders theirs; a probe that runs last in each boot (it mounts
# the data disk the test attaches, the ext4 file system labelled isar-test, runs its run.sh with
# the output in run.log, and powers the machine off); the NIC configured by DHCP.

DESCRIPTION = "Probe and applications of the Isar tests"
MAINTAINER = "container-loader tests <tests@container-loader.invalid>"

inherit dpkg-raw

SRC_URI = " \
    file://isar-test-probe \
    file://isar-test-probe.service \
    file://isar-test-app-docker.service \
    file://isar-test-app-podman.service \
    file://50-isar-test.network"

DEBIAN_DEPENDS = "systemd, mount"

do_install() {
    install -D -m 0755 ${WORKDIR}/isar-test-probe ${D}/usr/lib/isar-test/isar-test-probe
    for unit in isar-test-probe isar-test-app-docker isar-test-app-podman; do
        install -D -m 0644 ${WORKDIR}/$unit.service ${D}/lib/systemd/system/$unit.service
        install -d ${D}/lib/systemd/system/multi-user.target.wants
        ln -s ../$unit.service ${D}/lib/systemd/system/multi-user.target.wants/$unit.service
    done
    install -D -m 0644 ${WORKDIR}/50-isar-test.network ${D}/etc/systemd/network/50-isar-test.network
}
