# Shared helpers for bench/ and scripts/: start a throwaway PostgreSQL and a
# gatehouse in front of it, on free loopback ports, in $WORK. Source it,
# set WORK and ROOT, and call stop_all on exit.

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
PIDS=()

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true
  sleep 1
}

# start_postgres: superuser "bench" with password $PW on 127.0.0.1:$PGPORT.
start_postgres() {
  PGPORT=$(free_port)
  PW=${PW:-pw-$(date +%s)}
  [ "$(id -u)" = 0 ] && chown postgres "$WORK"
  echo "$PW" > "$WORK/pw"; [ "$(id -u)" = 0 ] && chown postgres "$WORK/pw"
  as_pg "$PGBIN/initdb" -D "$WORK/pg" -U bench --pwfile="$WORK/pw" --auth-host=scram-sha-256 --auth-local=trust \
    -E UTF8 --locale=C --no-sync >/dev/null
  as_pg "$PGBIN/postgres" -D "$WORK/pg" -p "$PGPORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$WORK" \
    -c fsync=off -c synchronous_commit=off -c shared_buffers=256MB -c max_connections=300 "$@" >"$WORK/postgres.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    PGPASSWORD=$PW psql -h 127.0.0.1 -p "$PGPORT" -U bench -d postgres -Atc 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "postgres did not start:" >&2; cat "$WORK/postgres.log" >&2; return 1
}

# start_gatehouse DB: builds gatehouse, starts it, creates connection DB
# (target: the "bench" superuser on database DB), connection DB_guarded
# (the same target under the postgres-production preset) and DB_masked
# (every default detector on, and pgbench_accounts.filler masked), and exports
# TOKEN for a service identity that may use them. Sets GPORT and GPID.
# GH_DIR names its data directory under $WORK (default gh); GH_FLAGS adds
# server flags.
start_gatehouse() {
  local db=$1
  local gh=$WORK/${GH_DIR:-gh}
  GPORT=$(free_port); APORT=$(free_port)
  [ -x "$WORK/gatehouse" ] || (cd "$ROOT" && CGO_ENABLED=1 go build -o "$WORK/gatehouse" ./cmd/gatehouse)
  # shellcheck disable=SC2086 # GH_FLAGS holds extra flags
  "$WORK/gatehouse" server --data-dir "$gh" --api-addr "127.0.0.1:$APORT" --postgres-addr "127.0.0.1:$GPORT" \
    --log-level warn ${GH_FLAGS:-} >"$gh.out" 2>"$gh.err" &
  GPID=$!; PIDS+=($GPID)
  for _ in $(seq 100); do [ -s "$gh/admin-token" ] && break; sleep 0.1; done
  export GATEHOUSE_SERVER=https://127.0.0.1:$APORT GATEHOUSE_CA=$gh/ca.pem
  {
    cat <<YAML
kind: Identity
name: bench
type: service
groups: [bench]
YAML
    # Three connections to the same target: plain, guarded, masked.
    for name in "$db" "${db}_guarded" "${db}_masked"; do
      cat <<YAML
---
kind: Connection
name: $name
type: postgres
address: 127.0.0.1:$PGPORT
database: $db
user: bench
password: "$PW"
YAML
    done
    cat <<YAML
---
kind: Policy
name: guarded
connections: {names: ["${db}_guarded"]}
presets: [postgres-production]
---
kind: Policy
name: masked
connections: {names: ["${db}_masked"]}
rules:
  - name: pii
    action: mask
    when: "true"
    mask: {detectors: [default]}
  - name: filler
    action: mask
    when: "true"
    mask: {columns: [public.pgbench_accounts.filler]}
YAML
  } | GATEHOUSE_TOKEN=$(cat "$gh/admin-token") "$WORK/gatehouse" apply -f - >/dev/null
  TOKEN=$(GATEHOUSE_TOKEN=$(cat "$gh/admin-token") "$WORK/gatehouse" token create --identity bench --ttl 24h)
}
