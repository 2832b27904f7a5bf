#!/bin/sh
# Publish hello-web to S3 with `drover push`; every host whose drover.yaml
# has the s3 source below picks it up on its next poll and rolls it out with
# the strategy of the manifest.
#
#   ./push.sh s3://acme-releases/hello-web/ [REVISION]
#
# drover push builds a reproducible tar.gz of the bundle directory (same
# files, same bytes, same sha256, whatever the file times), uploads it under
# PREFIX/bundles/, and writes PREFIX/manifest.yaml LAST, naming the bundle's
# key and sha256: a host never sees a manifest whose bundle is not there yet,
# and refuses a bundle whose sha256 differs. The deployment: section (strategy,
# batch, rollback...) comes from manifest.yaml in the source directory.
#
# Credentials: the usual AWS chain (environment, ~/.aws, instance profile).
# S3-compatible stores (MinIO, versitygw, Ceph): set AWS_ENDPOINT_URL_S3,
# e.g. AWS_ENDPOINT_URL_S3=http://127.0.0.1:7070, and AWS_REGION.
set -eu

to=${1:?usage: push.sh s3://BUCKET/PREFIX/ [REVISION]}
revision=${2:-$(date -u +%Y.%m.%d-%H%M%S)}
here=$(cd "$(dirname "$0")" && pwd)
# The packaged examples live in /usr/share/doc/drover/examples.
src=${SOURCE:-$here/../hello-web}

# Check before publishing: what fails here would fail on every host.
drover validate "$src"
drover push --source "$src" --to "$to" --revision "$revision"
echo "pushed hello-web $revision to $to; watch it with: drover status"
