#!/usr/bin/env bash
# Build the drover .deb and .rpm.
#
#   packaging/build.sh [-o DIR] [VERSION]
#   packaging/build.sh --print-version
#
# VERSION defaults to `git describe` of the tag v* (v1.2.0 -> 1.2.0; three
# commits later -> 1.2.0+git3.1a2b3c4; v2.0.0-rc1 -> 2.0.0~rc1), and without
# any tag to
# 0.0.0~git<commit date>.<short sha>. It must be a valid Debian and rpm
# version without '-'. Packages go to DIR (or $DIST, default dist/):
#   DIR/drover_<version>_amd64.deb
#   DIR/drover-<version>-1.x86_64.rpm
# File times in the packages, the man page date and the changelog date come
# from SOURCE_DATE_EPOCH, by default the commit's time.
set -euo pipefail

nfpm_pkg=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

repo=$(cd "$(dirname "$0")/.." && pwd)
dist=${DIST:-}
version=
print_version=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) dist=${2:?-o needs a directory}; shift 2 ;;
	-o*) dist=${1#-o}; shift ;;
	--print-version) print_version=1; shift ;;
	-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	-*) echo "build.sh: unknown option $1" >&2; exit 2 ;;
	*) version=$1; shift ;;
	esac
done
cd "$repo"

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -z "$version" ]; then
	if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.0, v1.2.0-3-g1a2b3c4, v2.0.0-rc1: a pre-release's '-' becomes
		# '~', which sorts before the release in dpkg and rpm alike.
		d=${d#v}
		suffix=
		if [[ $d =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
			d=${BASH_REMATCH[1]}
			suffix="+git${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
		fi
		version="${d//-/\~}$suffix"
	else
		version="0.0.0~git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d 2>/dev/null || date -u +%Y%m%d).$(git rev-parse --short=7 HEAD 2>/dev/null || echo 0)"
	fi
fi
# Valid for dpkg (native, so no '-') and for rpm (no '-', no ':').
if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
	echo "build.sh: version \"$version\" must start with a digit and hold only letters, digits, '.', '+' and '~'" >&2
	exit 2
fi
if [ -n "$print_version" ]; then
	echo "$version"
	exit 0
fi
export VERSION=$version
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

dist=${dist:-$repo/dist}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/drover-pkg.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
export STAGE

echo "==> drover $VERSION ($commit)"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath \
	-ldflags "-s -w -X main.version=$VERSION -X main.commit=$commit" \
	-o "$STAGE/drover" ./cmd/drover

# Generated from the CLI that goes into the package.
"$STAGE/drover" man | gzip -9n >"$STAGE/drover.1.gz"
mkdir "$STAGE/completions"
"$STAGE/drover" completion bash >"$STAGE/completions/drover.bash"
"$STAGE/drover" completion zsh >"$STAGE/completions/_drover"
"$STAGE/drover" completion fish >"$STAGE/completions/drover.fish"

# deploy-examples/ as documentation, without Go sources (the demo embeds
# hello-web from there). Modes are normalised; scripts stay executable.
mkdir "$STAGE/examples"
(cd deploy-examples && tar -cf - --exclude='*.go' --exclude='testdata' .) | tar -xf - -C "$STAGE/examples"
find "$STAGE/examples" -type d -exec chmod 0755 {} +
find "$STAGE/examples" -type f -perm /0111 -exec chmod 0755 {} +
find "$STAGE/examples" -type f ! -perm /0111 -exec chmod 0644 {} +
if [ ! -f "$STAGE/examples/hello-web/appspec.yml" ]; then
	echo "build.sh: warning: deploy-examples/hello-web/appspec.yml is missing; the package has no hello-web example" >&2
fi

# Debian wants a copyright file and, for a native package, changelog.gz.
cp packaging/deb/copyright "$STAGE/copyright"
{
	printf 'drover (%s) unstable; urgency=medium\n\n' "$VERSION"
	printf '  * Built from commit %s.\n\n' "$commit"
	printf ' -- drover developers <drover@drover.dev>  %s\n' "$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH" -R)"
} | gzip -9n >"$STAGE/changelog.gz"

deb="$dist/drover_${VERSION}_amd64.deb"
rpm="$dist/drover-${VERSION}-1.x86_64.rpm"
rm -f "$deb" "$rpm"
# nfpm's own go.mod decides its dependencies, not ours.
nfpm() { GOFLAGS= go run "$nfpm_pkg" "$@"; }
nfpm package --config packaging/nfpm.yaml --packager deb --target "$deb" >/dev/null
nfpm package --config packaging/nfpm.yaml --packager rpm --target "$rpm" >/dev/null
ls -l "$deb" "$rpm"
