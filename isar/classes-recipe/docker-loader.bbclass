# An image package whose images container-loader loads into docker at boot: Isar's
# docker-loader class, with this layer's container-loader class under it.

inherit container-loader

CONTAINER_ENGINE = "docker"

# Isar's defaults. The loader needs only docker.io (the daemon); docker-cli is what the device's
# applications run containers with, a package of its own from trixie on.
DOCKER_PKGS = "docker-cli, docker.io"
DOCKER_PKGS:buster = "docker.io"
DOCKER_PKGS:bullseye = "docker.io"
DOCKER_PKGS:bookworm = "docker.io"

# docker.io's default profile confines containers with AppArmor.
CONTAINER_ENGINE_PACKAGES ?= "${DOCKER_PKGS}, apparmor"
