#!/bin/sh
# The steps that make a container image package for container-loader, shared by the ISAR
# include (container-loader.inc runs them in do_install and do_install_fetched_containers) and by
# isar/scripts/image-package (which runs them outside bitbake), so that the two cannot drift.
#
#   image-package-steps.sh check PKG ENGINE COMPRESSION DELETE TAR=REF...
#       refuses bad input with a message naming it, and writes nothing
#   image-package-steps.sh install-images D PKG COMPRESSION TAR=REF...
#       D/usr/share/PKG/images/<archive> for each TAR (an uncompressed docker-archive of REF,
#       compressed here) and D/usr/share/PKG/image.list naming each archive with its REF
#   image-package-steps.sh install-units D PKG ENGINE DELETE
#       enables container-loader@PKG.service and binds it to ENGINE (docker|podman); DELETE=1
#       adds the drop-in that deletes each archive once its image is loaded
#   image-package-steps.sh archive-name REF COMPRESSION
#       the file name REF's archive gets: <REF's name, / as .>:<tag>.tar.<zst|gz|xz>
#
# REF is NAME:TAG, the tag written out: the list names each image as the engines will know it,
# and a digest cannot name a docker-archive's image (skopeo refuses one there).
# Compression commands take their options from ZSTD_DEFAULTS and XZ_DEFAULTS when set (ISAR's
# variables of those names; the include passes them on).
set -eu

# Where the container-loader package puts the template unit and the drop-ins (make install).
UNIT_DIR=/lib/systemd/system
DROP_IN_DIR=/usr/share/container-loader/drop-ins
# The template every image package instantiates once, with its own package name.
TEMPLATE=container-loader@.service
# What an image package ships, below /usr/share/PKG: where container-loader@PKG.service reads.
LIST_NAME=image.list
IMAGES_SUBDIR=images
# Defaults when ISAR's ZSTD_DEFAULTS/XZ_DEFAULTS are not given: ISAR's level, all cores.
ZSTD_OPTS_DEFAULT="-3 -T0"
XZ_OPTS_DEFAULT="-6 -T0"
# The seed's gzip options: best compression, no name or time stamp (the same bytes every build),
# rsync-friendly.
GZIP_OPTS="-9 -n --rsyncable"
# The longest name the engines take (docker's NameTotalLengthMax) and tag (128 characters).
NAME_MAX=255

prog=${IMAGE_PACKAGE_PROG:-image-package-steps}

die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

# Prints why $1 is not a NAME:TAG reference as docker, podman and skopeo read one; prints nothing
# when it is. The grammar is docker's distribution/reference, as src/reference.rs applies it.
ref_problem() {
	ref=$1
	case $ref in
	'')
		echo "empty reference"
		return
		;;
	*@*)
		echo "a digest names content, not an image a docker-archive can be saved as: write NAME:TAG"
		return
		;;
	*[!A-Za-z0-9._:/-]*)
		echo "a reference holds only letters, digits, '.', '_', '-', '/' and ':'"
		return
		;;
	esac
	case ${ref##*/} in
	*:*) ;;
	*)
		echo "no tag: write NAME:TAG ($ref:latest for the latest)"
		return
		;;
	esac
	name=${ref%:*}
	tag=${ref##*:}
	if ! printf '%s\n' "$tag" | grep -Eqx '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}'; then
		echo "tag \"$tag\": one letter, digit or '_', then up to 127 of those, '.' and '-'"
		return
	fi
	if [ "${#name}" -gt "$NAME_MAX" ]; then
		echo "name longer than $NAME_MAX characters"
		return
	fi
	path=$name
	first=${name%%/*}
	if [ "$first" != "$name" ]; then
		case $first in
		*.* | *:* | localhost)
			if ! printf '%s\n' "$first" |
				grep -Eqx '([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(\.([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*(:[0-9]+)?'; then
				echo "registry \"$first\": host name labels, then an optional :PORT"
				return
			fi
			path=${name#*/}
			;;
		esac
	fi
	case $path in
	*[A-Z]*)
		echo "repository name must be lower case"
		return
		;;
	esac
	if ! printf '%s\n' "$path" | grep -Eqx '[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*'; then
		echo "repository name: [a-z0-9] separated by '.', '_', '__' or '-', in components joined by '/'"
		return
	fi
}

# The archive's file name: the seed's (REF's name with '/' as '.') plus the tag, so that two
# tags of one image get two archives, and the compression's extension.
archive_name() {
	name=${1%:*}
	printf '%s:%s.tar.%s\n' "$(printf '%s' "$name" | tr / .)" "${1##*:}" "$2"
}

check_compression() {
	case $1 in
	zst | gz | xz) ;;
	*) die "unknown compression \"$1\": zst, gz or xz" ;;
	esac
}

check_engine() {
	case $1 in
	docker | podman) ;;
	*) die "unknown engine \"$1\": docker or podman" ;;
	esac
}

check_delete() {
	case $1 in
	0 | 1) ;;
	*) die "delete after load is 0 or 1, not \"$1\"" ;;
	esac
}

# A Debian package name that is also a unit instance name as written: systemd refuses '+' in
# unit names, and escaping it would change the /usr/share/%i path the template reads.
check_package() {
	if ! printf '%s\n' "$1" | grep -Eqx '[a-z0-9][a-z0-9.-]+'; then
		die "package name \"$1\": lower-case letters, digits, '.' and '-', at least two, starting with a letter or digit"
	fi
}

# TAR=REF... : every REF valid, every TAR a tar file, no archive name twice.
check_images() {
	compression=$1
	shift
	[ "$#" -gt 0 ] || die "no images: give at least one IMAGE.tar=NAME:TAG"
	seen=
	for pair in "$@"; do
		case $pair in
		*=*) ;;
		*) die "\"$pair\": expected IMAGE.tar=NAME:TAG" ;;
		esac
		tar=${pair%=*}
		ref=${pair##*=}
		problem=$(ref_problem "$ref")
		[ -z "$problem" ] || die "invalid image reference \"$ref\": $problem"
		if [ ! -f "$tar" ] || [ ! -r "$tar" ]; then
			die "$tar: not a readable file (the docker-archive of $ref)"
		fi
		# An uncompressed tar has "ustar" at offset 257; a compressed one would be compressed
		# twice and refused by the engine at boot.
		magic=$(dd if="$tar" bs=1 skip=257 count=5 2>/dev/null)
		[ "$magic" = ustar ] || die "$tar: not an uncompressed tar (the docker-archive of $ref, as skopeo copy docker-archive: writes it)"
		archive=$(archive_name "$ref" "$compression")
		case " $seen " in
		*" $archive "*) die "$ref: archive $archive is named twice (the same image, or names that differ only in '/' and '.')" ;;
		esac
		seen="$seen $archive"
	done
}

# The option variables are lists of words: unquoted on purpose.
# shellcheck disable=SC2086
compress() {
	case $1 in
	zst) zstd -q -c ${ZSTD_DEFAULTS:-$ZSTD_OPTS_DEFAULT} <"$2" >"$3" ;;
	xz) xz -c ${XZ_DEFAULTS:-$XZ_OPTS_DEFAULT} <"$2" >"$3" ;;
	gz) gzip -c $GZIP_OPTS <"$2" >"$3" ;;
	esac
}

install_images() {
	[ "$#" -ge 3 ] || die "usage: install-images D PKG COMPRESSION TAR=REF..."
	dest=$1 pkg=$2 compression=$3
	shift 3
	check_package "$pkg"
	check_compression "$compression"
	check_images "$compression" "$@"
	share=$dest/usr/share/$pkg
	mkdir -p "$share/$IMAGES_SUBDIR"
	list=$share/$LIST_NAME
	: >"$list"
	for pair in "$@"; do
		tar=${pair%=*}
		ref=${pair##*=}
		archive=$(archive_name "$ref" "$compression")
		compress "$compression" "$tar" "$share/$IMAGES_SUBDIR/$archive" ||
			die "$tar: compressing to $archive failed"
		chmod 0644 "$share/$IMAGES_SUBDIR/$archive"
		printf '%s %s\n' "$archive" "$ref" >>"$list"
	done
	chmod 0644 "$list"
}

install_units() {
	[ "$#" -eq 4 ] || die "usage: install-units D PKG ENGINE DELETE"
	dest=$1 pkg=$2 engine=$3 delete=$4
	check_package "$pkg"
	check_engine "$engine"
	check_delete "$delete"
	units=$dest$UNIT_DIR
	dropins=$units/container-loader@$pkg.service.d
	mkdir -p "$dropins" "$units/multi-user.target.wants"
	# Links, not copies: the drop-ins stay those of the installed loader package. Absolute,
	# since /lib may be a link to /usr/lib, where a relative path would miss /usr/share.
	ln -sfn "$DROP_IN_DIR/$engine.conf" "$dropins/engine.conf"
	if [ "$delete" = 1 ]; then
		ln -sfn "$DROP_IN_DIR/delete-after-load.conf" "$dropins/delete-after-load.conf"
	fi
	# Enabled for as long as the package is installed: multi-user.target wants the instance.
	ln -sfn "../$TEMPLATE" "$units/multi-user.target.wants/container-loader@$pkg.service"
}

[ "$#" -gt 0 ] || die "usage: image-package-steps.sh check|install-images|install-units|archive-name ARGS..."
step=$1
shift
case $step in
check)
	[ "$#" -ge 4 ] || die "usage: check PKG ENGINE COMPRESSION DELETE TAR=REF..."
	check_package "$1"
	check_engine "$2"
	check_compression "$3"
	check_delete "$4"
	compression=$3
	shift 4
	check_images "$compression" "$@"
	;;
install-images) install_images "$@" ;;
install-units) install_units "$@" ;;
archive-name)
	[ "$#" -eq 2 ] || die "usage: archive-name REF COMPRESSION"
	problem=$(ref_problem "$1")
	[ -z "$problem" ] || die "invalid image reference \"$1\": $problem"
	check_compression "$2"
	archive_name "$1" "$2"
	;;
*) die "unknown step \"$step\": check, install-images, install-units or archive-name" ;;
esac
