# An image package whose images container-loader loads into podman at boot: Isar's
# podman-loader class, with this layer's container-loader class under it.

inherit container-loader

CONTAINER_ENGINE = "podman"

CONTAINER_ENGINE_PACKAGES ?= "podman"
