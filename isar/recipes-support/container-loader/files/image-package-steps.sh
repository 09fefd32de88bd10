#!/bin/sh
# The steps that make a container image package for container-loader, shared by the Isar class
# (container-loader.bbclass runs `unit`, `recompress` and `pack`) and by isar/scripts/image-package (which
# builds the same package outside bitbake), so that the two cannot drift.
#
#   image-package-steps.sh check PKG ENGINE COMPRESSION DELETE TAR=REF...
#       refuses bad input with a message naming it, and writes nothing
#   image-package-steps.sh install-images D PKG COMPRESSION TAR=REF...
#       D/usr/share/PKG/images/<archive> for each TAR (an uncompressed docker-archive of REF,
#       compressed here as Isar's docker fetcher compresses it) and D/usr/share/PKG/image.list
#       naming each archive with its REF
#   image-package-steps.sh recompress ARCHIVE.zst OUT COMPRESSION
#       OUT: the zstd ARCHIVE (as Isar's docker fetcher leaves it) compressed with COMPRESSION
#   image-package-steps.sh pack ARCHIVE OUT BIN
#       OUT: the tar inside ARCHIVE as the layer-framed zstd archive `BIN pack` writes (a frame
#       per tar member, a member index and a seek table; still one zstd stream to every
#       reader), BIN being a container-loader built with the pack feature (`make pack-tool`)
#   image-package-steps.sh unit UNITS PKG ENGINE DELETE
#       prints PKG.service, the package's unit: UNITS/container-loader@.service read for PKG,
#       then UNITS/drop-ins/ENGINE.conf and, with DELETE=1, UNITS/drop-ins/delete-after-load.conf
#   image-package-steps.sh archive-name REF COMPRESSION
#       the file name REF's archive gets: <REF's name, / as .>:<tag>.<zst|gz|xz>, the name Isar's
#       fetcher gives a zstd one
#
# REF is NAME:TAG, the tag written out: the list names each image as the engines will know it,
# and a digest cannot name a docker-archive's image (skopeo refuses one there).
# Compression commands take their options from ZSTD_DEFAULTS and XZ_DEFAULTS when set (Isar's
# variables of those names).
set -eu

# The loader's template unit and its drop-ins (systemd/ in the repository, the same names below
# UNITS), of which the package's unit is made.
TEMPLATE=container-loader@.service
DROP_INS=drop-ins
# Where the loader package installs the drop-ins: the generated unit says where each part is from.
DROP_IN_DIR=/usr/share/container-loader/drop-ins
# What an image package ships, below /usr/share/PKG: where PKG.service reads.
LIST_NAME=image.list
IMAGES_SUBDIR=images
# Defaults when Isar's ZSTD_DEFAULTS/XZ_DEFAULTS are not given: Isar's level, all cores.
ZSTD_OPTS_DEFAULT="-3 -T0"
XZ_OPTS_DEFAULT="-T0"
# gzip's options: best compression, no name or time stamp (the same bytes every build),
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
# when it is. The grammar is docker's distribution/reference, as src/input/reference.rs applies it.
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
	# From here the reference is one line (the set above has no newline): grep -x below checks
	# all of it.
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

# The archive's file name, Isar's: REF's name with '/' as '.', the tag, and the compression's
# extension.
archive_name() {
	name=${1%:*}
	printf '%s:%s.%s\n' "$(printf '%s' "$name" | tr / .)" "${1##*:}" "$2"
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
# unit names, and escaping it would change the /usr/share/%i path the template reads. The name
# becomes paths (/usr/share/PKG, PKG.service), so it is checked whole: a case pattern matches
# the value, where grep -x would accept a value of several lines for one line that fits.
check_package() {
	case $1 in
	'' | ? | [!a-z0-9]* | *[!a-z0-9.-]*)
		die "package name \"$1\": lower-case letters, digits, '.' and '-', at least two, starting with a letter or digit"
		;;
	esac
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
# Standard input compressed with COMPRESSION to standard output.
compress() {
	case $1 in
	zst) zstd -q -c ${ZSTD_DEFAULTS:-$ZSTD_OPTS_DEFAULT} ;;
	xz) xz -c ${XZ_DEFAULTS:-$XZ_OPTS_DEFAULT} ;;
	gz) gzip -c $GZIP_OPTS ;;
	esac
}

# The fetched zstd archive in another compression. A failure anywhere in the pipe fails the
# step (no pipefail in sh: the decompressor's status is kept by hand).
recompress() {
	[ "$#" -eq 3 ] || die "usage: recompress ARCHIVE.zst OUT COMPRESSION"
	check_compression "$3"
	status=$( { { zstd -q -d -c "$1" || echo "zstd -d: exit $?" >&3; } | compress "$3" >"$2"; } 3>&1)
	[ -z "$status" ] || die "$1: $status"
	chmod 0644 "$2"
}

# The archive layer-framed by a build host's container-loader. The device build has no pack and
# says so on stderr; the hint says where a build with it comes from.
pack() {
	[ "$#" -eq 3 ] || die "usage: pack ARCHIVE OUT BIN"
	archive=$1 out=$2 bin=$3
	[ -f "$bin" ] && [ -x "$bin" ] ||
		die "$bin: no such program; packing needs a container-loader built with the pack feature: run \`make pack-tool\` in container-loader's repository (it builds dist/container-loader-pack)"
	"$bin" pack --quiet "$archive" "$out" ||
		die "$archive: $bin pack failed (exit $?); packing needs a container-loader built with the pack feature (\`make pack-tool\` in container-loader's repository)"
	chmod 0644 "$out"
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
		compress "$compression" <"$tar" >"$share/$IMAGES_SUBDIR/$archive" ||
			die "$tar: compressing to $archive failed"
		chmod 0644 "$share/$IMAGES_SUBDIR/$archive"
		printf '%s %s\n' "$archive" "$ref" >>"$list"
	done
	chmod 0644 "$list"
}

# The package's unit as systemd reads an instance of the template with its drop-ins: the
# template (its opening comment, which speaks of instances, left out) with each %i as PKG, then
# each drop-in's lines. Sections may come again, and a later Environment= of one name replaces
# an earlier one, so the file means what the instance and its drop-ins mean together.
unit() {
	[ "$#" -eq 4 ] || die "usage: unit UNITS PKG ENGINE DELETE"
	units=$1 pkg=$2 engine=$3 delete=$4
	check_package "$pkg"
	check_engine "$engine"
	check_delete "$delete"
	drop_ins=$engine.conf
	[ "$delete" = 0 ] || drop_ins="$drop_ins delete-after-load.conf"
	for f in "$TEMPLATE" $drop_ins; do
		[ "$f" = "$TEMPLATE" ] || f=$DROP_INS/$f
		[ -f "$units/$f" ] || die "$units/$f: missing (the loader's units: systemd/ in its repository)"
	done
	cat <<EOF
# $pkg.service: loads the container images of package $pkg into $engine at boot with
# /usr/bin/container-loader (list: /usr/share/$pkg/image.list).
# Made when the package was built: container-loader's $TEMPLATE for $pkg, then the
# drop-ins of $DROP_IN_DIR/ it names below. systemd reads it as it reads
# container-loader@$pkg.service with those drop-ins.

EOF
	sed -e '1,/^$/d' -e "s/%i/$pkg/g" "$units/$TEMPLATE"
	for f in $drop_ins; do
		printf '\n# --- %s/%s\n' "$DROP_IN_DIR" "$f"
		sed -e '/^#/d' -e "s/%i/$pkg/g" "$units/$DROP_INS/$f"
	done
}

[ "$#" -gt 0 ] || die "usage: image-package-steps.sh check|install-images|recompress|pack|unit|archive-name ARGS..."
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
recompress) recompress "$@" ;;
pack) pack "$@" ;;
unit) unit "$@" ;;
archive-name)
	[ "$#" -eq 2 ] || die "usage: archive-name REF COMPRESSION"
	problem=$(ref_problem "$1")
	[ -z "$problem" ] || die "invalid image reference \"$1\": $problem"
	check_compression "$2"
	archive_name "$1" "$2"
	;;
*) die "unknown step \"$step\": check, install-images, recompress, pack, unit or archive-name" ;;
esac
