#!/usr/bin/env bash
# Apache Kafka for local use and tests: a single-node KRaft broker (broker + controller in one
# JVM, no ZooKeeper) run from Apache's own jars, fetched from Maven Central with `mvn`.
#
#   scripts/kafka.sh deps             apt-get install what Kafka and the rdkafka build need, if missing:
#                                     default-jre-headless + maven (broker), cmake + libcurl4-openssl-dev
#                                     (librdkafka built from rdkafka's vendored sources)
#   scripts/kafka.sh install          fetch the jars into $DATA/libs (reused once complete)
#   scripts/kafka.sh start            format storage if new, start the broker, wait until it answers
#   scripts/kafka.sh stop             SIGTERM, wait for a clean shutdown, SIGKILL after a deadline
#   scripts/kafka.sh status           exit 0 when the broker answers, 1 otherwise
#   scripts/kafka.sh drop-scratch     delete the topics earlier test and benchmark runs left behind
#                                     (test-*, provisioned-*, outbox-bench-*) once their partition
#                                     folders are older than SCRATCH_MAX_AGE_MIN minutes (default
#                                     120, so a run still going on keeps its topics); run by scripts/test
#   scripts/kafka.sh brokers          print the bootstrap servers to use
#   scripts/kafka.sh tool CLASS ARGS  run any Kafka main class from the same jars
#   scripts/kafka.sh topics ARGS      org.apache.kafka.tools.TopicCommand (bootstrap added)
#   scripts/kafka.sh perf-producer ARGS   org.apache.kafka.tools.ProducerPerformance
#   scripts/kafka.sh console-consumer ARGS org.apache.kafka.tools.consumer.ConsoleConsumer (bootstrap added)
#   scripts/kafka.sh api-versions     org.apache.kafka.tools.BrokerApiVersionsCommand
#
# Environment:
#   KAFKA_BROKERS      when set, an external cluster is used: `start` only checks that it answers
#   KAFKA_PORT         client port on 127.0.0.1 (default 9092); the controller uses KAFKA_PORT+1
#                      unless KAFKA_CONTROLLER_PORT is set
#   KAFKA_VERSION      Apache Kafka release fetched from Maven Central (default 4.1.1)
#   KAFKA_HEAP         JVM heap (default 512m)
#   KAFKA_START_TIMEOUT seconds `start` waits for the broker (default 60)
#   KAFKA_NODE_DIR     broker config, data, log and pid file (default $DATA/node-$KAFKA_PORT)
#   ORDERS_DATA_DIR    project data folder (default <repo>/.data); Kafka lives in its kafka/
#
# Topics are never created on first use (auto.create.topics.enable=false): whoever owns a topic
# provisions it explicitly with its partitions and replication factor (the outbox relay does so
# at start, tests create a random topic each).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_ROOT="${ORDERS_DATA_DIR:-$REPO/.data}"
KAFKA_DIR="$DATA_ROOT/kafka"
LIBS="$KAFKA_DIR/libs"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
LOG4J_VERSION="2.24.3"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
HEAP="${KAFKA_HEAP:-512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
NODE_DIR="${KAFKA_NODE_DIR:-$KAFKA_DIR/node-$PORT}"
PID_FILE="$NODE_DIR/kafka.pid"
LOG_FILE="$NODE_DIR/kafka.log"
CONFIG="$NODE_DIR/server.properties"
LOG_DIRS="$NODE_DIR/data"
LOCK_FILE="$KAFKA_DIR/.lock"
COMPLETE_MARK="$LIBS/.complete-$KAFKA_VERSION"

say() { echo "kafka.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# --- installation -----------------------------------------------------------------------------

ensure_packages() {
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    if ((${#missing[@]})); then
        say "installing ${missing[*]} with apt-get"
        if [[ $(id -u) -ne 0 ]]; then die "need root to apt-get install ${missing[*]}"; fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    local major
    major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    if [[ -n "$major" && "${major%%.*}" -lt 17 ]]; then
        die "Kafka $KAFKA_VERSION needs Java 17 or newer, found $major"
    fi
}

# Debian packages the Rust side needs to build rdkafka with `cmake-build`: cmake, and the curl
# headers that librdkafka 2.12 includes even with curl disabled (nothing links to libcurl).
RDKAFKA_BUILD_PACKAGES=(cmake libcurl4-openssl-dev)

deps() {
    ensure_packages
    local missing=() p
    for p in "${RDKAFKA_BUILD_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        say "installing ${missing[*]} with apt-get"
        if [[ $(id -u) -ne 0 ]]; then die "need root to apt-get install ${missing[*]}"; fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

write_pom() {
    local dir="$1"
    cat >"$dir/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scripts/kafka.sh: the broker's and tools' runtime classpath -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.orders</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <!-- Kafka Connect is not needed for topics, console consumer or perf tools -->
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
        <exclusion><groupId>com.fasterxml.jackson.jakarta.rs</groupId><artifactId>jackson-jakarta-rs-json-provider</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

write_log4j_configs() {
    # Broker: INFO to stdout (redirected to the log file). Tools: WARN to stderr only.
    cat >"$KAFKA_DIR/log4j2-broker.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = warn
EOF
    cat >"$KAFKA_DIR/log4j2-tools.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
EOF
}

install() {
    mkdir -p "$KAFKA_DIR"
    write_log4j_configs
    if [[ -f "$COMPLETE_MARK" ]]; then return 0; fi
    ensure_packages
    local t0=$SECONDS work
    work="$(mktemp -d "$KAFKA_DIR/fetch.XXXXXX")"
    write_pom "$work"
    say "fetching Apache Kafka $KAFKA_VERSION from Maven Central"
    if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1; then
        tail -n 40 "$work/mvn.log" >&2
        die "mvn could not fetch Apache Kafka $KAFKA_VERSION (log: $work/mvn.log)"
    fi
    rm -rf "$LIBS"
    mv "$work/libs" "$LIBS"
    touch "$COMPLETE_MARK"
    rm -rf "$work"
    say "installed $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s into $LIBS"
}

java_run() {
    # java_run LOG4J_CONFIG MAIN_CLASS ARGS...
    local log_config="$1"
    shift
    exec_java=(java -Xshare:auto -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$log_config" -cp "$LIBS/*" "$@")
    "${exec_java[@]}"
}

tool() {
    [[ $# -ge 1 ]] || die "usage: kafka.sh tool MAIN_CLASS [ARGS...]"
    install
    java_run "$KAFKA_DIR/log4j2-tools.properties" "$@"
}

# --- broker lifecycle ---------------------------------------------------------------------------

bootstrap() {
    if [[ -n "${KAFKA_BROKERS:-}" ]]; then echo "$KAFKA_BROKERS"; else echo "127.0.0.1:$PORT"; fi
}

port_open() {
    # port_open HOST PORT: a TCP connect succeeds
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

brokers_answer() {
    local hp host port
    IFS=',' read -ra hps <<<"$(bootstrap)"
    for hp in "${hps[@]}"; do
        hp="${hp#*://}"
        host="${hp%:*}"
        port="${hp##*:}"
        if port_open "$host" "$port"; then return 0; fi
    done
    return 1
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    # guard against a recycled pid: it must be our broker
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $CONFIG" || return 1
    echo "$pid"
}

write_server_properties() {
    mkdir -p "$NODE_DIR"
    cat >"$CONFIG" <<EOF
# generated by scripts/kafka.sh: single-node KRaft broker for local use and tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$LOG_DIRS
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
}

format_storage() {
    if [[ -f "$LOG_DIRS/meta.properties" ]]; then return 0; fi
    local cluster_id
    cluster_id="$(java_run "$KAFKA_DIR/log4j2-tools.properties" kafka.tools.StorageTool random-uuid)"
    say "formatting KRaft storage in $LOG_DIRS (cluster $cluster_id)"
    if ! java_run "$KAFKA_DIR/log4j2-tools.properties" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$CONFIG" >"$NODE_DIR/format.log" 2>&1; then
        cat "$NODE_DIR/format.log" >&2
        die "formatting storage failed"
    fi
}

wait_ready() {
    local pid="$1" deadline=$((SECONDS + START_TIMEOUT)) log_from="$2"
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$LOG_FILE" >&2 || true
            die "broker exited during start (log: $LOG_FILE)"
        fi
        if port_open 127.0.0.1 "$PORT" &&
            tail -c +"$log_from" "$LOG_FILE" | grep -q "Kafka Server started"; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 40 "$LOG_FILE" >&2 || true
    die "broker did not answer on 127.0.0.1:$PORT within ${START_TIMEOUT}s (log: $LOG_FILE)"
}

start() {
    if [[ -n "${KAFKA_BROKERS:-}" ]]; then
        brokers_answer || die "KAFKA_BROKERS=$KAFKA_BROKERS: no broker accepts connections"
        say "using external brokers $KAFKA_BROKERS"
        return 0
    fi
    mkdir -p "$KAFKA_DIR"
    # one starter at a time: several test processes may ask at once
    exec 9>"$LOCK_FILE"
    flock 9
    local t0=$SECONDS pid
    if pid="$(running_pid)"; then
        if port_open 127.0.0.1 "$PORT"; then
            say "already running (pid $pid) on 127.0.0.1:$PORT"
            return 0
        fi
        # started by someone else and still coming up
        wait_ready "$pid" 1
        say "running (pid $pid) on 127.0.0.1:$PORT"
        return 0
    fi
    if port_open 127.0.0.1 "$PORT"; then
        # Not ours (no pid file here), e.g. the broker of another checkout on this machine, or
        # one left running by an earlier session: use it if it is a Kafka broker.
        install
        if timeout 30 java -Djava.awt.headless=true \
            "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2-tools.properties" -cp "$LIBS/*" \
            org.apache.kafka.tools.BrokerApiVersionsCommand \
            --bootstrap-server "127.0.0.1:$PORT" >/dev/null 2>&1; then
            say "a Kafka broker not started from $KAFKA_DIR already answers on 127.0.0.1:$PORT; using it"
            return 0
        fi
        die "port $PORT is taken by a process that is not a Kafka broker; set KAFKA_PORT or KAFKA_BROKERS"
    fi
    install
    write_server_properties
    format_storage
    local log_from=1
    [[ -f "$LOG_FILE" ]] && log_from=$(($(stat -c %s "$LOG_FILE") + 1))
    # setsid: the broker outlives the shell or test process that started it
    setsid java "-Xmx$HEAP" "-Xms$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExplicitGCInvokesConcurrent -Xshare:auto -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2-broker.properties" \
        "-Dkafka.logs.dir=$NODE_DIR" \
        -cp "$LIBS/*" kafka.Kafka "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
    wait_ready "$pid" "$log_from"
    say "started (pid $pid) on 127.0.0.1:$PORT in $((SECONDS - t0)) s; log $LOG_FILE"
}

stop() {
    if [[ -n "${KAFKA_BROKERS:-}" ]]; then
        say "KAFKA_BROKERS is set: the external cluster is not ours to stop"
        return 0
    fi
    local pid
    if ! pid="$(running_pid)"; then
        say "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + ${KAFKA_STOP_TIMEOUT:-30}))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        say "broker (pid $pid) still running after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    say "stopped (pid $pid)"
}

# Tests and benchmarks create a topic per case; left alone they pile up (hundreds of partition
# folders slow every broker start). Only our own broker's scratch topics are touched.
drop_scratch() {
    if [[ -n "${KAFKA_BROKERS:-}" ]]; then
        say "external brokers: leaving their topics alone"
        return 0
    fi
    # A topic's age: its partition folders' (name-<partition>) last change; an old folder
    # belongs to a topic nobody has written for that long.
    local names
    names=$(find "$LOG_DIRS" -mindepth 1 -maxdepth 1 -type d -mmin "+${SCRATCH_MAX_AGE_MIN:-120}" \
        -regextype posix-extended -regex '.*/(test|provisioned|outbox-bench)-.*-[0-9]+' \
        -printf '%f\n' 2>/dev/null | sed -E 's/-[0-9]+$//' | sort -u)
    [[ -n "$names" ]] || return 0
    say "deleting $(wc -l <<<"$names") scratch topics of earlier runs"
    # One call, the names as an alternation (topic names are [a-zA-Z0-9._-], so no escaping
    # beyond the dots).
    local pattern
    pattern=$(sed 's/\./\\./g' <<<"$names" | paste -sd'|')
    tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap)" --delete --if-exists \
        --topic "($pattern)"
}

status() {
    if [[ -n "${KAFKA_BROKERS:-}" ]]; then
        if brokers_answer; then echo "external brokers $KAFKA_BROKERS answer"; return 0; fi
        echo "external brokers $KAFKA_BROKERS do not answer"
        return 1
    fi
    local pid
    if pid="$(running_pid)" && port_open 127.0.0.1 "$PORT"; then
        echo "running (pid $pid) on 127.0.0.1:$PORT, data $NODE_DIR"
        return 0
    fi
    echo "not running (127.0.0.1:$PORT)"
    return 1
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
deps) deps ;;
install) install ;;
start) start ;;
stop) stop ;;
restart) stop && start ;;
status) status ;;
drop-scratch) drop_scratch ;;
brokers) bootstrap ;;
tool) tool "$@" ;;
topics) tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap)" "$@" ;;
perf-producer) tool org.apache.kafka.tools.ProducerPerformance "$@" ;;
console-consumer) tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$(bootstrap)" "$@" ;;
api-versions) tool org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$(bootstrap)" "$@" ;;
*)
    # the header comment is the help text
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    [[ -z "$cmd" || "$cmd" == "help" || "$cmd" == "-h" || "$cmd" == "--help" ]] || exit 2
    ;;
esac
