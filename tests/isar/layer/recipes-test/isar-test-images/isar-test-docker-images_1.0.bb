# An image package as an Isar user writes it (Isar's doc/user_manual.md): docker, a digest and a
# tag, and the archives deleted once loaded. tests/isar.rs seeds DL_DIR with the images under
# the docker fetcher's names, since no registry is reached here.

DESCRIPTION = "Images of the Isar tests, loaded into docker"
MAINTAINER = "container-loader tests <tests@container-loader.invalid>"

inherit docker-loader

CONTAINER_DELETE_AFTER_LOAD = "1"

SRC_URI += " \
    docker://registry.example.com/isar-test/app;digest=sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9;tag=1 \
    docker://registry.example.com/isar-test/tools;tag=2 \
    "
