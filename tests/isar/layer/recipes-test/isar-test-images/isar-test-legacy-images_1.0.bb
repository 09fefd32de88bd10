# An image package written before Isar's classes, with the include Isar keeps as a transitional
# wrapper: it must still get a loader (this layer's class, when the layer is there) and Isar's
# warning to migrate. Parsed by tests/isar_parse.rs, never built.

DESCRIPTION = "Images of the Isar tests, by the transitional include"
MAINTAINER = "container-loader tests <tests@container-loader.invalid>"

require recipes-support/container-loader/docker-loader.inc

SRC_URI += " \
    docker://registry.example.com/isar-test/tools;tag=2 \
    "
