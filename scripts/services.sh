#!/usr/bin/env bash
# Make sure RabbitMQ and PostgreSQL answer on loopback: start local installs that are stopped,
# else `docker compose up -d` where Docker runs, else say exactly what to start.
set -uo pipefail
cd "$(dirname "$0")/.."

RABBIT_HOST=${RABBIT_HOST:-127.0.0.1}; RABBIT_PORT=${RABBIT_PORT:-5672}
PG_HOST=${PG_HOST:-127.0.0.1}; PG_PORT=${PG_PORT:-5432}

answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_for() {  # name host port seconds
  for _ in $(seq 1 "$4"); do answers "$2" "$3" && return 0; sleep 1; done
  return 1
}
pg_ready() {
  answers "$PG_HOST" "$PG_PORT" || return 1
  if command -v pg_isready >/dev/null 2>&1; then pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; fi
}

start_rabbit() {
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "services: starting the local RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    return 0
  fi
  return 1
}
start_postgres() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting the local PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start \
      >/dev/null 2>&1 || true
    return 0
  fi
  return 1
}
start_compose() {
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo "services: starting RabbitMQ and PostgreSQL with docker compose"
    docker compose up -d rabbitmq postgres && return 0
  fi
  return 1
}

ok=0
if ! answers "$RABBIT_HOST" "$RABBIT_PORT"; then
  start_rabbit || start_compose || true
  wait_for rabbitmq "$RABBIT_HOST" "$RABBIT_PORT" 60 || {
    echo "services: RabbitMQ does not answer on $RABBIT_HOST:$RABBIT_PORT." >&2
    echo "  Install and start it (Debian: apt-get install rabbitmq-server; rabbitmq-server -detached)" >&2
    echo "  or run: docker compose up -d rabbitmq" >&2
    ok=1
  }
fi
if ! pg_ready; then
  start_postgres || start_compose || true
  for _ in $(seq 1 60); do pg_ready && break; sleep 1; done
  pg_ready || {
    echo "services: PostgreSQL does not answer on $PG_HOST:$PG_PORT." >&2
    echo "  Install and start it (Debian: apt-get install postgresql; pg_ctlcluster 15 main start)" >&2
    echo "  or run: docker compose up -d postgres" >&2
    ok=1
  }
fi
# RabbitMQ accepts TCP before its AMQP listener is fully up; wait until it can be managed.
if [ $ok -eq 0 ] && command -v rabbitmqctl >/dev/null 2>&1; then
  rabbitmqctl -q await_startup >/dev/null 2>&1 || true
fi
[ $ok -eq 0 ] && echo "services: RabbitMQ $RABBIT_HOST:$RABBIT_PORT and PostgreSQL $PG_HOST:$PG_PORT answer"
exit $ok
