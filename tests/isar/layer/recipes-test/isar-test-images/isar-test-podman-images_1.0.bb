# An image package as an Isar user writes it: podman, a tag, the archives kept.

DESCRIPTION = "Images of the Isar tests, loaded into podman"
MAINTAINER = "container-loader tests <tests@container-loader.invalid>"

inherit podman-loader

SRC_URI += " \
    docker://registry.example.com/isar-test/app;tag=1 \
    "
