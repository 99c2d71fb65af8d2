#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, combined broker+controller) for tests and development, built from Maven
# Central artifacts only (test/kafka/pom.xml), so a fresh machine needs nothing but Java 17+, Maven and Maven Central.
#
#   scripts/kafka.sh start     resolve (cached) + format + start; no-op when already running
#   scripts/kafka.sh address   prints 127.0.0.1:PORT of the running broker (exit 1 when not running)
#   scripts/kafka.sh sasl-address  the SASL_PLAINTEXT listener (PLAIN users redtail/redtail-secret, a super
#                              user, and limited/limited-secret, bound by ACLs)
#   scripts/kafka.sh status    "running 127.0.0.1:PORT (pid N)" or "stopped" (exit 3)
#   scripts/kafka.sh restart   stops and starts the same broker (same ports, keeps its data)
#   scripts/kafka.sh stop      stops the broker and removes its state
#   scripts/kafka.sh logs      prints the tail of the broker log
#   scripts/kafka.sh libs      prints the directory of the broker's jars (resolving them first), for Java tools
#   scripts/kafka.sh data-dir  prints the running broker's log.dirs
#
# Environment: KAFKA_VERSION (default below), REDTAIL_KAFKA_DIR (state, default ${TMPDIR:-/tmp}/redtail-kafka),
# REDTAIL_KAFKA_HEAP (default 512m), REDTAIL_KAFKA_CONFIG (extra server.properties lines, newline separated).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="${KAFKA_VERSION:-4.4.0}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/redtail/kafka-$VERSION"
LIBS="$CACHE/libs"
STATE="${REDTAIL_KAFKA_DIR:-${TMPDIR:-/tmp}/redtail-kafka}"
HEAP="${REDTAIL_KAFKA_HEAP:-512m}"
POM="$ROOT/test/kafka/pom.xml"

die() {
  echo "kafka.sh: error: $*" >&2
  exit 1
}
say() { echo "kafka.sh: $*" >&2; }

pid_alive() {
  [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null
}

port_open() {
  (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running() {
  pid_alive && [ -f "$STATE/port" ] && [ -f "$STATE/ready" ] && port_open "$(cat "$STATE/port")"
}

log_tail() {
  for f in "$STATE/logs/server.log" "$STATE/kafka.out"; do
    if [ -s "$f" ]; then
      echo "---- last lines of $f ----" >&2
      tail -n 40 "$f" >&2
    fi
  done
}

check_java() {
  command -v java >/dev/null || die "java not found; Kafka $VERSION needs Java 17+ (e.g. apt-get install openjdk-17-jre-headless)"
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/{print $2}')
  case "$v" in
  1.* | 9 | 10 | 11 | 12 | 13 | 14 | 15 | 16) die "java $v found; Kafka $VERSION brokers need Java 17+" ;;
  esac
}

# Maven Central is the only source: the pom pins the broker and adds the log4j2 backend its pom leaves out.
# A marker holding the pom's checksum makes the second start offline and instant.
resolve() {
  local sum
  sum="$VERSION $(cksum <"$POM")"
  if [ -f "$LIBS/.complete" ] && [ "$(cat "$LIBS/.complete")" = "$sum" ]; then
    return
  fi
  if ! command -v mvn >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing maven from Debian..."
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null ||
        die "mvn is missing and apt-get install maven failed; install Apache Maven and run again"
    else
      die "mvn is missing; install Apache Maven (it fetches org.apache.kafka:kafka_2.13:$VERSION from Maven Central)"
    fi
  fi
  say "resolving org.apache.kafka:kafka_2.13:$VERSION from Maven Central into $LIBS ..."
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  local out
  if ! out=$(mvn -B -q -f "$POM" -Dkafka.version="$VERSION" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime 2>&1); then
    echo "$out" | tail -n 30 >&2
    rm -rf "$LIBS"
    die "could not resolve org.apache.kafka:kafka_2.13:$VERSION with Maven (is Maven Central reachable? see above)"
  fi
  [ -f "$LIBS/kafka_2.13-$VERSION.jar" ] || die "Maven finished but $LIBS/kafka_2.13-$VERSION.jar is missing"
  echo "$sum" >"$LIBS/.complete"
}

# Listening ports come from below the kernel's ephemeral range: a port from that range can be taken as the local
# port of some client connection between the choice and the bind, or while `restart` has the broker down.
free_port() {
  local p low=32768 span
  [ -r /proc/sys/net/ipv4/ip_local_port_range ] && read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  span=$((low - 10000))
  [ "$span" -ge 1000 ] || span=40000
  for _ in $(seq 1 200); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % span))
    port_open "$p" || {
      echo "$p"
      return
    }
  done
  die "no free loopback port found"
}

write_config() {
  local port=$1 cport=$2 sport=$3
  mkdir -p "$STATE/data" "$STATE/logs"
  cat >"$STATE/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
# A SASL/PLAIN listener with ACLs lets tests prove authentication and authorization errors and the transactions
# fallback for real. The PLAINTEXT listener (ANONYMOUS) and user redtail are super users, so ACLs only bind
# the user "limited".
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_redtail="redtail-secret" user_limited="limited-secret";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:redtail
log.dirs=$STATE/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# The sink creates its topics itself; auto-creation would hide missing-topic bugs.
auto.create.topics.enable=false
log.cleaner.backoff.ms=1000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
  if [ -n "${REDTAIL_KAFKA_CONFIG:-}" ]; then
    printf '%s\n' "$REDTAIL_KAFKA_CONFIG" >>"$STATE/server.properties"
  fi
  cat >"$STATE/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $STATE/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
EOF
}

java_opts() {
  JOPTS=(-Xmx"$HEAP" -Xms128m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$STATE/log4j2.properties"
    -Dkafka.logs.dir="$STATE/logs" -cp "$LIBS/*")
}

java_cmd() {
  java_opts
  java "${JOPTS[@]}" "$@"
}

# A metadata round trip proves the broker serves clients, not just that the socket is bound.
metadata_ok() {
  local addr=$1
  command -v node >/dev/null || return 0
  [ -d "$ROOT/node_modules/kafkajs" ] || return 0
  (cd "$ROOT" && node --input-type=module -e "
    import kafkajs from 'kafkajs';
    const k = new kafkajs.Kafka({ brokers: ['$addr'], logLevel: kafkajs.logLevel.NOTHING, retry: { retries: 0 } });
    const a = k.admin();
    try { await a.connect(); const c = await a.describeCluster(); process.exit(c.brokers.length > 0 ? 0 : 1); }
    catch { process.exit(1); }
  ") 2>/dev/null
}

start() {
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  flock -w 300 9 || die "timed out waiting for another kafka.sh holding $STATE.lock"
  if running; then
    say "already running at 127.0.0.1:$(cat "$STATE/port") (pid $(cat "$STATE/pid"))"
    return
  fi
  if pid_alive; then
    say "a previous broker (pid $(cat "$STATE/pid")) is not answering; stopping it"
    stop_locked
  fi
  check_java
  resolve
  local attempt
  for attempt in 1 2 3; do
    prepare
    say "starting Kafka $VERSION (KRaft) on 127.0.0.1:$(cat "$STATE/port"), controller 127.0.0.1:$(cat "$STATE/controller-port"), state $STATE"
    launch && return
    # launch returns only when another process bound one of the chosen ports first; anything else dies there.
    say "a chosen port was taken before the broker bound it (attempt $attempt); choosing other ports"
  done
  die "three attempts to start the broker found their ports taken"
}

# A fresh state dir: ports, server.properties, formatted KRaft storage.
prepare() {
  rm -rf "$STATE"
  local port cport sport
  port=$(free_port)
  cport=$(free_port)
  while [ "$cport" = "$port" ]; do cport=$(free_port); done
  sport=$(free_port)
  while [ "$sport" = "$port" ] || [ "$sport" = "$cport" ]; do sport=$(free_port); done
  write_config "$port" "$cport" "$sport"
  local cluster out
  cluster=$(java_cmd kafka.tools.StorageTool random-uuid 2>"$STATE/format.err" | tail -n 1) ||
    {
      cat "$STATE/format.err" >&2
      die "kafka.tools.StorageTool random-uuid failed"
    }
  if ! out=$(java_cmd kafka.tools.StorageTool format -t "$cluster" -c "$STATE/server.properties" 2>&1); then
    echo "$out" >&2
    die "formatting the KRaft storage in $STATE/data failed"
  fi
  echo "$port" >"$STATE/port"
  echo "$cport" >"$STATE/controller-port"
  echo "$sport" >"$STATE/sasl-port"
}

# Starts the JVM on the prepared state dir and waits until it serves clients.
launch() {
  local port
  port=$(cat "$STATE/port")
  rm -f "$STATE/ready"
  # setsid: the broker must outlive this script and not get the terminal's SIGINT meant for the test runner.
  # 9>&-: the broker must not inherit the lock, or the next stop would wait on it forever.
  java_opts
  setsid java "${JOPTS[@]}" kafka.Kafka "$STATE/server.properties" </dev/null >>"$STATE/kafka.out" 2>&1 9>&- &
  echo $! >"$STATE/pid"
  local deadline=$((SECONDS + 120))
  until port_open "$port"; do
    if ! pid_alive; then
      if grep -qs "Address already in use" "$STATE/kafka.out" "$STATE/logs/server.log"; then
        return 75
      fi
      log_tail
      die "the broker exited during startup (see above)"
    fi
    [ $SECONDS -lt $deadline ] || {
      log_tail
      stop_locked
      die "the broker did not open 127.0.0.1:$port within 120s"
    }
    sleep 0.2
  done
  until metadata_ok "127.0.0.1:$port"; do
    [ $SECONDS -lt $deadline ] || {
      log_tail
      stop_locked
      die "the broker on 127.0.0.1:$port does not answer metadata requests"
    }
    pid_alive || {
      log_tail
      die "the broker exited during startup (see above)"
    }
    sleep 0.3
  done
  touch "$STATE/ready"
  say "ready at 127.0.0.1:$port"
}

# Stops the JVM only; state and ports stay, so `restart` brings the same broker back with its data (tests of
# a broker restart under load).
kill_broker() {
  if pid_alive; then
    local pid
    pid=$(cat "$STATE/pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "broker pid $pid ignored SIGTERM for 30s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
}

restart() {
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  flock -w 300 9 || die "timed out waiting for another kafka.sh holding $STATE.lock"
  [ -f "$STATE/server.properties" ] && [ -f "$STATE/port" ] || die "no broker state in $STATE; run scripts/kafka.sh start"
  kill_broker
  say "restarting Kafka on 127.0.0.1:$(cat "$STATE/port") with its data"
  launch || die "another process took a port of the broker while it was down; start a new one (stop, then start)"
}

stop_locked() {
  kill_broker
  rm -rf "$STATE"
}

stop() {
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  flock -w 300 9 || die "timed out waiting for another kafka.sh holding $STATE.lock"
  stop_locked
}

case "${1:-}" in
start) start ;;
restart) restart ;;
stop) stop ;;
address)
  running || die "no broker is running (state $STATE); run scripts/kafka.sh start"
  echo "127.0.0.1:$(cat "$STATE/port")"
  ;;
sasl-address)
  running || die "no broker is running (state $STATE); run scripts/kafka.sh start"
  echo "127.0.0.1:$(cat "$STATE/sasl-port")"
  ;;
status)
  if running; then
    echo "running 127.0.0.1:$(cat "$STATE/port") (pid $(cat "$STATE/pid"), Kafka $VERSION, state $STATE)"
  else
    echo "stopped"
    exit 3
  fi
  ;;
logs) log_tail ;;
libs)
  resolve
  echo "$LIBS"
  ;;
data-dir)
  running || die "no broker is running (state $STATE); run scripts/kafka.sh start"
  echo "$STATE/data"
  ;;
*)
  echo "usage: $0 start|restart|stop|address|sasl-address|status|logs|libs|data-dir" >&2
  exit 2
  ;;
esac
