#!/usr/bin/env bash
# Real Apache Kafka, HDFS (MiniDFSCluster) and Apache Flume 1.11 on 127.0.0.1, from
# Maven Central jars, for tests and benchmarks.
#
#   scripts/services.sh fetch [kafka|hdfs|flume ...]   resolve and cache the jars (all by default)
#   scripts/services.sh start kafka                    start in the background, print KAFKA_BOOTSTRAP=...
#                                                      (with MILLRACE_KAFKA_SASL_SSL=1 also a SASL_SSL
#                                                      listener: KAFKA_SASL_SSL_BOOTSTRAP=, KAFKA_CA=)
#   scripts/services.sh start hdfs                     ... print HDFS_URL=hdfs://127.0.0.1:N
#   scripts/services.sh start flume-agent NAME FILE [JAVA_OPTS...]
#   scripts/services.sh stop [kafka|hdfs|flume-agent|all]
#   scripts/services.sh status
#   scripts/services.sh run kafka DIR PORT CONTROLLER_PORT [SASL_SSL_PORT]
#                                                      in the foreground (millrace-testkit)
#   scripts/services.sh run hdfs DIR [PORT [keep]]             stops when stdin closes
#   scripts/services.sh run flume-agent NAME FILE [JAVA_OPTS...]
#
# The jars live in $MILLRACE_SERVICES_DIR (default ~/.cache/millrace-services), resolved
# through ~/.m2 from the poms in crates/millrace-testkit/java/. Background services keep
# their data, logs and pid files in $MILLRACE_RUN_DIR (default target/services).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
java_dir="$root/crates/millrace-testkit/java"
cache=${MILLRACE_SERVICES_DIR:-$HOME/.cache/millrace-services}
run_dir=${MILLRACE_RUN_DIR:-$root/target/services}
jvm_common=(-Djava.net.preferIPv4Stack=true -Dfile.encoding=UTF-8 -XX:+UseSerialGC -XX:TieredStopAtLevel=1)

die() {
  echo "services.sh: $*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed; $2"
}

# The stamp records the pom a lib folder was resolved from, so an edited pom is
# fetched again and an interrupted fetch is never taken for a finished one. It hashes
# names relative to the folder, so two checkouts of the same poms share the cache.
stamp_of() { (cd "$java_dir/$1" && find . -maxdepth 1 -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1); }

fetched() { [ -f "$cache/$1/stamp" ] && [ "$(cat "$cache/$1/stamp")" = "$(stamp_of "$1")" ]; }

fetch_one() {
  local svc=$1
  if fetched "$svc"; then
    echo "$svc: cached in $cache/$svc"
    return
  fi
  need mvn "install Maven (apt-get install maven) and run this again"
  need javac "install a JDK 17 (apt-get install openjdk-17-jdk-headless) and run this again"
  echo "$svc: resolving jars with Maven (the first time downloads about 50-110 MB)"
  local tmp="$cache/$svc.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp/lib" "$tmp/conf"
  local attempt
  for attempt in 1 2 3; do
    if (cd "$java_dir/$svc" && timeout 900 mvn -q -B -f pom.xml \
      org.apache.maven.plugins:maven-dependency-plugin:3.11.0:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp/lib") >"$cache/$svc.fetch.log" 2>&1; then
      break
    fi
    [ "$attempt" = 3 ] && die "$svc: Maven could not resolve the jars (see $cache/$svc.fetch.log); check access to Maven Central and run 'scripts/services.sh fetch $svc' again"
    echo "$svc: Maven failed (attempt $attempt of 3); retrying"
    sleep 5
  done
  find "$java_dir/$svc" -maxdepth 1 -type f \( -name '*.properties' -o -name '*.xml' \) ! -name pom.xml -exec cp {} "$tmp/conf/" \;
  if compgen -G "$java_dir/$svc/*.java" >/dev/null; then
    mkdir -p "$tmp/classes"
    javac -nowarn -d "$tmp/classes" -cp "$tmp/lib/*" "$java_dir/$svc"/*.java ||
      die "$svc: compiling $java_dir/$svc/*.java failed"
  fi
  stamp_of "$svc" >"$tmp/stamp"
  rm -rf "${cache:?}/$svc"
  mv "$tmp" "$cache/$svc"
  echo "$svc: $(find "$cache/$svc/lib" -name '*.jar' | wc -l) jars in $cache/$svc"
}

require() {
  fetched "$1" || die "the $1 jars are missing or stale; run 'scripts/services.sh fetch $1' first"
}

# A port nothing listens on, picked at random above the ephemeral range's usual start
# so it rarely meets a port the kernel hands out.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found on 127.0.0.1"
}

# With a fourth argument the broker also listens for SASL_SSL on that port, as
# `localhost` (the name its certificate holds): SASL PLAIN and SCRAM-SHA-256 for the
# user `alice` (password `alice-secret`), and DIR/ca.pem is the certificate to trust.
run_kafka() {
  local dir=$1 port=$2 cport=$3 sport=${4:-}
  require kafka
  need java "install Java 17 (apt-get install openjdk-17-jre-headless) and run this again"
  mkdir -p "$dir"
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  local advertised="PLAINTEXT://127.0.0.1:$port"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  local secure="" scram=()
  if [ -n "$sport" ]; then
    if [ ! -f "$dir/broker.p12" ]; then
      keytool -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 30 \
        -dname CN=localhost -ext SAN=DNS:localhost,IP:127.0.0.1 \
        -keystore "$dir/broker.p12" -storetype PKCS12 -storepass broker-secret \
        -keypass broker-secret >"$dir/keytool.log" 2>&1 ||
        die "making the broker's certificate failed: $(tail -5 "$dir/keytool.log")"
      keytool -exportcert -rfc -alias broker -keystore "$dir/broker.p12" \
        -storepass broker-secret -file "$dir/ca.pem" >>"$dir/keytool.log" 2>&1 ||
        die "exporting the broker's certificate failed: $(tail -5 "$dir/keytool.log")"
    fi
    listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
    advertised="$advertised,SASL_SSL://localhost:$sport"
    protocols="$protocols,SASL_SSL:SASL_SSL"
    secure="sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.location=$dir/broker.p12
ssl.keystore.type=PKCS12
ssl.keystore.password=broker-secret
ssl.key.password=broker-secret"
    scram=(--add-scram 'SCRAM-SHA-256=[name=alice,password=alice-secret]')
  fi
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
$secure
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
EOF
  local java=(java -Xmx512m "${jvm_common[@]}" "-Dlog4j2.configurationFile=$cache/kafka/conf/log4j2.properties" -cp "$cache/kafka/lib/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local id
    id=$("${java[@]}" kafka.tools.StorageTool random-uuid)
    "${java[@]}" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" "${scram[@]}" >"$dir/format.log" 2>&1 ||
      die "formatting Kafka storage in $dir failed: $(tail -5 "$dir/format.log")"
  fi
  exec "${java[@]}" kafka.Kafka "$dir/server.properties"
}

run_hdfs() {
  local dir=$1 port=${2:-0} keep=${3:-}
  require hdfs
  need java "install Java 17 (apt-get install openjdk-17-jre-headless) and run this again"
  mkdir -p "$dir"
  exec java -Xmx1g "${jvm_common[@]}" "-Dlog4j.configuration=file:$cache/hdfs/conf/log4j.properties" \
    -cp "$cache/hdfs/classes:$cache/hdfs/conf:$cache/hdfs/lib/*" MiniHdfs "$dir" "$port" $keep
}

run_flume() {
  [ $# -ge 2 ] || die "usage: run flume-agent NAME FILE [JAVA_OPTS...]"
  local name=$1 file=$2
  shift 2
  require flume
  need java "install Java 17 (apt-get install openjdk-17-jre-headless) and run this again"
  [ -f "$file" ] || die "no such Flume configuration file: $file"
  # The conf folder comes first on the classpath so its log4j2.xml is the one used.
  exec java -Xmx1g "${jvm_common[@]}" "$@" -cp "$cache/flume/conf:$cache/flume/lib/*" \
    org.apache.flume.node.Application -n "$name" -f "$file" --no-reload-conf
}

# Waits until `check` succeeds, or fails with the log's tail after `secs` seconds or
# when the process dies.
wait_ready() {
  local what=$1 pid=$2 log=$3 secs=$4
  shift 4
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "services.sh: $what exited before it was ready; its log ($log) ends with:" >&2
      tail -20 "$log" >&2
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "services.sh: $what was not ready after ${secs}s; its log ($log) ends with:" >&2
      tail -20 "$log" >&2
      kill -TERM -- "-$pid" 2>/dev/null || true
      die "stopped it; run 'scripts/services.sh start ${what%% *}' again"
    fi
    sleep 0.5
  done
}

start() {
  local svc=${1:-}
  shift || true
  mkdir -p "$run_dir"
  if [ -f "$run_dir/$svc.pid" ] && kill -0 "$(cat "$run_dir/$svc.pid")" 2>/dev/null; then
    die "$svc is already running (pid $(cat "$run_dir/$svc.pid")); 'scripts/services.sh stop $svc' first"
  fi
  local log="$run_dir/$svc.log" pid
  case "$svc" in
  kafka)
    local port cport sport=() dir="$run_dir/kafka"
    port=$(free_port)
    cport=$(free_port)
    [ -z "${MILLRACE_KAFKA_SASL_SSL:-}" ] || sport=("$(free_port)")
    rm -rf "$dir"
    setsid "$0" run kafka "$dir" "$port" "$cport" "${sport[@]}" >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$run_dir/kafka.pid"
    wait_ready "kafka" "$pid" "$log" 120 \
      bash -c "grep -q 'Kafka Server started' '$log' && (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null"
    echo "KAFKA_BOOTSTRAP=127.0.0.1:$port"
    if [ ${#sport[@]} -gt 0 ]; then
      echo "KAFKA_SASL_SSL_BOOTSTRAP=localhost:${sport[0]}"
      echo "KAFKA_CA=$dir/ca.pem"
    fi
    ;;
  hdfs)
    local dir="$run_dir/hdfs"
    rm -rf "$dir"
    # MiniHdfs stops when its stdin closes; a pipe from a process that never exits
    # keeps it running until it is stopped.
    setsid sh -c "tail -f /dev/null | '$0' run hdfs '$dir' 0" >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$run_dir/hdfs.pid"
    wait_ready "hdfs" "$pid" "$log" 180 grep -q '^HDFS_URL=' "$log"
    grep '^HDFS_URL=' "$log"
    ;;
  flume-agent)
    [ $# -ge 2 ] || die "usage: start flume-agent NAME FILE [JAVA_OPTS...]"
    setsid "$0" run flume-agent "$@" >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$run_dir/flume-agent.pid"
    wait_ready "flume-agent" "$pid" "$log" 120 grep -q 'Starting Source\|Starting Sink' "$log"
    echo "FLUME_AGENT_PID=$pid"
    ;;
  *) die "start what? kafka, hdfs or flume-agent" ;;
  esac
}

stop_one() {
  local svc=$1 f="$run_dir/$1.pid"
  [ -f "$f" ] || return 0
  local pid
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "$svc stopped (pid $pid)"
  fi
  rm -f "$f"
}

cmd=${1:-}
shift || true
case "$cmd" in
fetch)
  mkdir -p "$cache"
  [ $# -gt 0 ] || set -- kafka hdfs flume
  for s in "$@"; do
    case "$s" in kafka | hdfs | flume) fetch_one "$s" ;; *) die "fetch what? kafka, hdfs or flume" ;; esac
  done
  ;;
run)
  svc=${1:-}
  shift || true
  case "$svc" in
  kafka)
    [ $# -eq 3 ] || [ $# -eq 4 ] || die "usage: run kafka DIR PORT CONTROLLER_PORT [SASL_SSL_PORT]"
    run_kafka "$@"
    ;;
  hdfs)
    [ $# -ge 1 ] || die "usage: run hdfs DIR [PORT [keep]]"
    run_hdfs "$@"
    ;;
  flume-agent) run_flume "$@" ;;
  *) die "run what? kafka, hdfs or flume-agent" ;;
  esac
  ;;
start) start "$@" ;;
stop)
  what=${1:-all}
  case "$what" in
  all) for s in flume-agent kafka hdfs; do stop_one "$s"; done ;;
  kafka | hdfs | flume-agent) stop_one "$what" ;;
  *) die "stop what? kafka, hdfs, flume-agent or all" ;;
  esac
  ;;
status)
  for s in kafka hdfs flume-agent; do
    if [ -f "$run_dir/$s.pid" ] && kill -0 "$(cat "$run_dir/$s.pid")" 2>/dev/null; then
      echo "$s: running (pid $(cat "$run_dir/$s.pid"), log $run_dir/$s.log)"
    else
      echo "$s: stopped"
    fi
  done
  ;;
*)
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  [ -z "$cmd" ] || exit 2
  ;;
esac
