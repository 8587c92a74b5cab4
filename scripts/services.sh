#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use are up: start the local ones if they are down, then
# FAIL (never fall back) if either still cannot be reached.
set -uo pipefail
pg_host=127.0.0.1; pg_port=5432; redis_host=127.0.0.1; redis_port=6379

reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

if ! reachable "$pg_host" "$pg_port" && command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
if ! reachable "$redis_host" "$redis_port" && command -v redis-server >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
for _ in $(seq 1 30); do
  reachable "$pg_host" "$pg_port" && reachable "$redis_host" "$redis_port" && break
  sleep 1
done
ok=1
reachable "$pg_host" "$pg_port" || { echo "ERROR: PostgreSQL is not reachable on $pg_host:$pg_port" >&2; ok=0; }
reachable "$redis_host" "$redis_port" || { echo "ERROR: Redis is not reachable on $redis_host:$redis_port" >&2; ok=0; }
[ "$ok" = 1 ] || exit 1
echo "PostgreSQL and Redis are up"
