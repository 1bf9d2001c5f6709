#!/usr/bin/env bash
# The project's test command (README, .ci/run). On a fresh machine it installs what is
# missing, fetches the Maven artifacts for the real services, checks formatting and
# lints, builds, and runs every test; whatever it started is stopped on exit, even
# when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed; install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
cargo --version

# Debian packages the build and the tests use.
missing=()
for tool in curl:curl openssl:openssl java:openjdk-17-jdk-headless javac:openjdk-17-jdk-headless mvn:maven make:make cc:gcc pkg-config:pkg-config; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
# librdkafka is built against the system's OpenSSL (Kafka over TLS and SASL).
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing: ${missing[*]}; install them (as root: apt-get install ${missing[*]}) and run this again" >&2
    exit 1
  fi
fi

cleanup() {
  "$root/scripts/services.sh" stop all >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "fetching Kafka, HDFS and Flume jars (cached after the first run)"
scripts/services.sh fetch

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test"
mkdir -p target
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
set -e
grep -E '^test result:' target/test-output.txt | awk '
  { p += $4; f += $6; i += $8 }
  END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }'

step "side-by-side benchmark with Apache Flume, short mode (checks counts, not timings)"
bench_out=$(mktemp -d)
set +e
scripts/bench.sh --short --profile debug --out "$bench_out" 1 2
bench_status=$?
set -e
rm -rf "$bench_out"
[ "$status" != 0 ] || status=$bench_status
exit "$status"
