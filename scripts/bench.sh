#!/usr/bin/env bash
# Side by side with Apache Flume 1.11: runs each scenario with the same Flume properties
# file under Apache Flume (jars from Maven Central, via scripts/services.sh) and under
# millrace-agent, alternating runs after a warm-up, checks every count, and rewrites its
# own section of benches/RESULTS.md and the charts in benches/charts/.
#
#   scripts/bench.sh [SCENARIO...]                      all seven scenarios, 3 pairs of runs each
#   scripts/bench.sh --short --profile debug 1 2        what CI runs: small counts, one pair, asserts counts
#   scripts/bench.sh --help                             every option
#
# Scenarios: 1 seq-null, 2 spooldir-file_roll, 3 spooldir-filechannel, 4 avro-null,
# 5 taildir-kafka, 6 exec-hdfs, 7 multiplex-null. See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null 2>&1 || { echo "bench.sh: python3 is not installed (apt-get install python3)" >&2; exit 1; }
command -v java >/dev/null 2>&1 || { echo "bench.sh: java is not installed (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
exec python3 benches/bench.py "$@"
