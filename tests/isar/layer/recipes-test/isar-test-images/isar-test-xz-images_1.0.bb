# An image package that opts into this layer's recompression: the fetched archive is stored as
# xz (smaller on flash), which the loader reads as it reads zstd. Isar's own classes ignore the
# variable and ship the zstd archive.

DESCRIPTION = "Images of the Isar tests, stored as xz, loaded into podman"
MAINTAINER = "container-loader tests <tests@container-loader.invalid>"

inherit podman-loader

CONTAINER_LOADER_COMPRESSION = "xz"

SRC_URI += " \
    docker://registry.example.com/isar-test/tools;tag=2 \
    "
