# An image package that opts into this layer's layer-framed archives: each fetched archive is
# rewritten by the build host's `container-loader pack` (a zstd frame per tar member, a member
# index, a seek table), still zstd under the fetcher's name. Isar's own classes ignore the
# variable and ship the archive as fetched. Parsed by tests/isar_parse.rs.

DESCRIPTION = "Images of the Isar tests, layer-framed, loaded into docker"
MAINTAINER = "container-loader tests <tests@container-loader.invalid>"

inherit docker-loader

CONTAINER_LOADER_PACK = "1"

SRC_URI += " \
    docker://registry.example.com/isar-test/tools;tag=2 \
    "
