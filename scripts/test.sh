#!/usr/bin/env bash
# The project's one test command (README, .ci/run): makes sure the real servers the integration tests need exist,
# then runs the whole suite. Extra arguments go to vitest (e.g. a file filter).
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "error: $1 is missing and installing it needs root; install it yourself ($2) and run again" >&2
    exit 1
  fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# redis-server / redis-cli / redis-benchmark / redis-check-rdb: tests start their own servers on free ports.
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  need_root redis-server "apt-get install redis-server"
  echo "installing redis-server from Debian..." >&2
  apt_install redis-server redis-tools
fi

# Prometheus (and promtool): test/observe scrapes redtail with a real server and checks /metrics with promtool.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  need_root prometheus "apt-get install prometheus"
  echo "installing prometheus from Debian..." >&2
  apt_install --no-install-recommends prometheus
fi

# PostgreSQL: the machine normally starts one on 127.0.0.1:5432; start or install it when missing.
if [ -z "${PGHOST:-}" ]; then
  if ! (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      need_root postgresql "apt-get install postgresql"
      echo "installing postgresql from Debian..." >&2
      apt_install postgresql
    fi
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    for _ in $(seq 1 50); do (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null && break; sleep 0.2; done
    (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null || { echo "error: PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
  fi
fi

# Every temp dir of this run (redis-servers' dirs, checkpoints, the broker's state) goes under one directory that is
# removed at exit, so failed tests leave nothing behind and concurrent runs never share a broker.
RUN_TMP=$(mktemp -d "${TMPDIR:-/tmp}/redtail-test.XXXXXX")
export TMPDIR="$RUN_TMP"
started_kafka=0
cleanup() {
  if [ "$started_kafka" = 1 ]; then scripts/kafka.sh stop || true; fi
  rm -rf "$RUN_TMP"
}
trap cleanup EXIT

# Apache Kafka (KRaft, from Maven Central) when the Kafka tests are present and no broker is given.
if [ -z "${KAFKA_BROKERS:-}" ] && [ -x scripts/kafka.sh ] && [ -d test/sinks/kafka ]; then
  started_kafka=1
  scripts/kafka.sh start
  KAFKA_BROKERS=$(scripts/kafka.sh address)
  export KAFKA_BROKERS
fi

npx vitest run "$@"
