#!/usr/bin/env bash
# Set up a fresh machine, build, and run the control plane on the embedded SQLite store.
# Data (database, certificates, admin kubeconfig) goes to ${CAPSTAN_DATA_DIR:-./data}.
# Then, from another shell:  kubectl --kubeconfig ./data/kubeconfig.yaml get namespaces
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release -p capstan-apiserver
export CAPSTAN_DATA_DIR="${CAPSTAN_DATA_DIR:-$PWD/data}"
exec ./target/release/apiserver "$@"
