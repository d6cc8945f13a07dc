#!/usr/bin/env bash
# Builds the bosar-deploy image (Dockerfile, FROM scratch) with buildah and smoke-tests it:
# `--version`, then `verify` from inside the image against a local test gateway
# (tests/gateway, started here on a loopback port). Not part of the test suite: it needs a
# release build (minutes) and buildah (`apt-get install -y buildah`). Run from the repo root:
#
#   scripts/image.sh [TAG]        # default TAG: localhost/bosar-deploy:dev
#   BOSAR_BIN=path scripts/image.sh   # package that binary instead of building one
#
# Storage: vfs, isolation: chroot (what works unprivileged-ish in a container; `podman run`
# fails here on setrlimit). Prints the binary and image sizes at the end.
set -euo pipefail
TAG="${1:-localhost/bosar-deploy:dev}"
B=(buildah --storage-driver vfs)
command -v buildah >/dev/null || { echo "image.sh: buildah is not installed (apt-get install -y buildah)" >&2; exit 2; }
[[ -f Cargo.toml && -f Dockerfile ]] || { echo "image.sh: run me from the repository root" >&2; exit 2; }

if [[ -n "${BOSAR_BIN:-}" ]]; then
  BIN="$BOSAR_BIN"   # a binary already built (e.g. a CI artifact); used as it is
else
  echo "image.sh: cargo build --release" >&2
  cargo build --release --quiet
  BIN=target/release/bosar-deploy
fi

CTX="$(mktemp -d -t bosar-image.XXXXXX)"
CTR=""
GW_PID=""
cleanup() {
  [[ -n "$CTR" ]] && "${B[@]}" rm "$CTR" >/dev/null 2>&1 || true
  [[ -n "$GW_PID" ]] && kill "$GW_PID" 2>/dev/null || true
  rm -rf "$CTX"
}
trap cleanup EXIT

# The root filesystem: binary, the libraries ldd names (and the loader), certificates, user.
R="$CTX/rootfs"
mkdir -p "$R/usr/local/bin" "$R/etc/ssl/certs" "$R/work" "$R/tmp"
install -m 0755 "$BIN" "$R/usr/local/bin/bosar-deploy"
for lib in $(ldd "$BIN" | grep -oE '/[^ ]+'); do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/"
echo "nonroot:x:65532:65532:nonroot:/work:/sbin/nologin" >"$R/etc/passwd"
echo "nonroot:x:65532:" >"$R/etc/group"
chmod 1777 "$R/tmp"
chown -R 65532:65532 "$R/work"
cp Dockerfile "$CTX/"

echo "image.sh: buildah bud -t $TAG" >&2
"${B[@]}" bud --quiet --isolation chroot -t "$TAG" "$CTX" >/dev/null

CTR="$("${B[@]}" from "$TAG")"
run_in() { "${B[@]}" run --isolation chroot --network host "$@"; }
VERSION="$(run_in "$CTR" -- /usr/local/bin/bosar-deploy --version)"
echo "image.sh: --version in the image: $VERSION"
[[ "$VERSION" == "bosar-deploy $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" ]] \
  || { echo "image.sh: unexpected --version: $VERSION" >&2; exit 1; }

# verify from inside the image against a local gateway replica (its token minted from the
# secret the image gets in its environment, as a CI job would pass it).
SECRET="image-smoke-secret-0123456789"
GW_LOG="$CTX/gateway.log"
(cd tests/gateway && PORT=0 JWT_SECRET="$SECRET" WEBSOCKET_PING_INTERVAL=2000 \
  WEBSOCKET_PING_TIMEOUT=3000 WEBSOCKET_HEARTBEAT_INTERVAL=1000 INSTANCE_ID=gw-image \
  exec node server.mjs >"$GW_LOG" 2>&1) &
GW_PID=$!
for _ in $(seq 100); do grep -q '^listening ' "$GW_LOG" 2>/dev/null && break; sleep 0.1; done
PORT="$(sed -n 's/^listening //p' "$GW_LOG" | head -1)"
[[ -n "$PORT" ]] || { echo "image.sh: the test gateway did not start:" >&2; cat "$GW_LOG" >&2; exit 1; }
cat >"$CTX/deploy.toml" <<TOML
[target_group]
name = "bosar-api-tg"

[gateway]
url = "http://127.0.0.1:$PORT"
namespace = "/chat"
health_path = "/health/websocket"
jwt_secret_env = "BOSAR_IMAGE_JWT_SECRET"
ping_interval = "2s"
ping_timeout = "3s"
heartbeat_event = "heartbeat"
heartbeat_interval = "1s"
TOML
"${B[@]}" copy --chown 65532:65532 "$CTR" "$CTX/deploy.toml" /work/deploy.toml >/dev/null
set +e
run_in --env BOSAR_IMAGE_JWT_SECRET="$SECRET" "$CTR" -- /usr/local/bin/bosar-deploy verify --targets 1
RC=$?
run_in --env BOSAR_IMAGE_JWT_SECRET="$SECRET" "$CTR" -- /usr/local/bin/bosar-deploy verify --connections 50 --hold 2s
RC2=$?
set -e
echo "image.sh: verify exit $RC, verify --connections 50 exit $RC2"
echo "image.sh: binary $(stat -c %s "$BIN") bytes; image $("${B[@]}" images --format '{{.Size}}' "$TAG")"
[[ $RC -eq 0 && $RC2 -eq 0 ]]
