#!/usr/bin/env bash
# Every test: installs the peers (moto in .venv, haproxy, the Node gateway), then format,
# lints and the whole suite. The tests start and stop moto, the gateways and HAProxy
# themselves on free loopback ports; a missing peer fails loudly, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export AWS_EC2_METADATA_DISABLED=true
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets
