# An image package written as for Isar alone: two images that container-loader loads into docker
# at every boot until docker has them. Add it to the image with
# IMAGE_INSTALL += "example-container-images"; the loader package comes with it
# (Depends: container-loader).
#
# On the device: systemctl status example-container-images,
# journalctl -u example-container-images.

DESCRIPTION = "Container images for the example application, loaded into docker at boot"
MAINTAINER = "Example maintainer <maintainer@example.org>"

# podman-loader for podman.
inherit docker-loader

# Delete each archive once its image is verified present (saves the space twice over, but the
# image cannot be loaded again after a reset of docker's store).
CONTAINER_DELETE_AFTER_LOAD = "1"

# Each image by name and tag (no tag: latest); a digest pins what the fetcher downloads.
# They become images/quay.io.libpod.alpine:3.10.2.zst and images/debian:bookworm-slim.zst in
# /usr/share/example-container-images/, listed in its image.list as quay.io/libpod/alpine:3.10.2
# and debian:bookworm-slim.
SRC_URI += " \
    docker://quay.io/libpod/alpine;digest=sha256:fa93b01658e3a5a1686dc3ae55f170d8de487006fb53a28efcd12ab0710a2e5f;tag=3.10.2 \
    docker://debian;tag=bookworm-slim \
    "
