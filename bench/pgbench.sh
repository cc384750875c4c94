#!/usr/bin/env bash
# Compares PostgreSQL reached directly, through pgbouncer and through
# gatehouse (without policy, and as "gh-policy" through a connection under
# the postgres-production preset), in one run on this machine. Every scenario runs in interleaved
# rounds (direct, pgbouncer, gatehouse, direct, …) because the machine is
# shared and noisy; the report gives medians and each path's ratio to direct.
#
#   bench/pgbench.sh                 full matrix (about 25 minutes)
#   ROUNDS=3 DURATION=8 ONLY='S-simple-c8' bench/pgbench.sh
#
# Knobs: ROUNDS (3), DURATION seconds per run (10), SCALE (10), ONLY (a
# regular expression over scenario names), PATHS (the paths compared,
# "direct pgbouncer gatehouse gh-policy"; add "gh-mask" for a connection
# with masking on (all detectors, and a column masked in every row),
# "floor" for bench/relayfloor,
# the cheapest possible relay, and "gh-noaudit" for a gateway that records
# nothing, to measure what the audit log and recordings cost), OUT (report
# file).
# Everything binds 127.0.0.1; all servers stop when the script ends.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SCALE=${SCALE:-10}
ONLY=${ONLY:-.}
PATHS=${PATHS:-direct pgbouncer gatehouse gh-policy}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/gatehouse-bench-XXXXXX)
OUT=${OUT:-$ROOT/bench/results/pgbench-$(date -u +%Y%m%dT%H%M%SZ).md}
mkdir -p "$(dirname "$OUT")"

# shellcheck source=../scripts/lib.sh
source "$ROOT/scripts/lib.sh"
for b in "$PGBIN/initdb" "$PGBIN/postgres" pgbench pgbouncer psql; do
  command -v "$b" >/dev/null || { echo "bench: $b not found: run scripts/install-deps" >&2; exit 1; }
done
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT

BPORT=$(free_port)
echo "bench: starting PostgreSQL" >&2
start_postgres
export PGPASSWORD=$PW PGSSLMODE=disable
createdb -h 127.0.0.1 -p "$PGPORT" -U bench bench
pgbench -h 127.0.0.1 -p "$PGPORT" -U bench -i -q -s "$SCALE" bench >/dev/null 2>&1

echo "bench: starting pgbouncer on 127.0.0.1:$BPORT (session pooling)" >&2
printf '"bench" "%s"\n' "$PW" > "$WORK/userlist.txt"
cat > "$WORK/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PGPORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir =
auth_type = plain
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = 300
default_pool_size = 250
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
EOF
[ "$(id -u)" = 0 ] && chown postgres "$WORK/userlist.txt" "$WORK/pgbouncer.ini"
as_pg pgbouncer -d "$WORK/pgbouncer.ini"
sleep 1
BPID=$(cat "$WORK/pgbouncer.pid")

echo "bench: building and starting gatehouse" >&2
if [[ " $PATHS " == *" gh-noaudit "* ]]; then
  # A second gateway that records nothing, to measure what the audit log costs.
  GH_DIR=gh-noaudit GH_FLAGS=--unsafe-no-audit start_gatehouse bench
  NPORT=$GPORT NPID=$GPID NTOKEN=$TOKEN
fi
start_gatehouse bench
(cd "$ROOT" && go build -o "$WORK/idleconns" ./bench/idleconns && go build -o "$WORK/relayfloor" ./bench/relayfloor)
FPORT=$(free_port)
"$WORK/relayfloor" -listen "127.0.0.1:$FPORT" -target "127.0.0.1:$PGPORT" >/dev/null 2>&1 &
FPID=$!; PIDS+=($FPID)

cat > "$WORK/large.sql" <<'EOF'
SELECT * FROM pgbench_accounts LIMIT 10000;
EOF

# Scenarios: name | pgbench arguments.
SCENARIOS=()
for script in S tpcb; do
  for mode in simple extended; do
    for c in 1 8 32; do
      args="-M $mode -c $c -j $(( c < 2 ? 1 : 2 ))"
      [ "$script" = S ] && args="-S $args"
      SCENARIOS+=("$script-$mode-c$c|$args")
    done
  done
done
SCENARIOS+=("large10k-simple-c1|-f $WORK/large.sql -M simple -c 1 -j 1")
SCENARIOS+=("large10k-simple-c8|-f $WORK/large.sql -M simple -c 8 -j 2")
SCENARIOS+=("large10k-extended-c8|-f $WORK/large.sql -M extended -c 8 -j 2")

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
CLK=$(getconf CLK_TCK)

RAW="$WORK/raw.tsv"
: > "$RAW"
run() { # scenario path args
  local name=$1 path=$2 args=$3 port user pw pid
  local db=bench
  case $path in
    direct)    port=$PGPORT; user=bench; pw=$PW;    pid= ;;
    pgbouncer) port=$BPORT;  user=bench; pw=$PW;    pid=$BPID ;;
    gatehouse) port=$GPORT;  user=bench; pw=$TOKEN; pid=$GPID ;;
    gh-policy) port=$GPORT;  user=bench; pw=$TOKEN; pid=$GPID; db=bench_guarded ;;
    gh-mask)   port=$GPORT;  user=bench; pw=$TOKEN; pid=$GPID; db=bench_masked ;;
    floor)     port=$FPORT;  user=bench; pw=$PW;    pid=$FPID ;;
    gh-noaudit) port=$NPORT; user=bench; pw=$NTOKEN; pid=$NPID ;;
  esac
  local t0=0 t1=0
  [ -n "$pid" ] && t0=$(ticks "$pid")
  # shellcheck disable=SC2086
  local out; out=$(PGPASSWORD=$pw pgbench -h 127.0.0.1 -p "$port" -U "$user" -n -T "$DURATION" $args "$db" 2>&1) || { echo "$out" >&2; return 1; }
  [ -n "$pid" ] && t1=$(ticks "$pid")
  local tps lat n us=0
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  [ -z "$pid" ] && us="-"
  [ -n "$pid" ] && us=$(awk -v d=$((t1 - t0)) -v n="$n" -v clk="$CLK" 'BEGIN { printf "%.1f", d * 1e6 / clk / n }')
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$path" "$tps" "$lat" "$us" >> "$RAW"
  printf 'bench: %-22s %-9s tps=%-10s lat=%-7sms cpu=%sus/txn\n' "$name" "$path" "$tps" "$lat" "$us" >&2
}

for sc in "${SCENARIOS[@]}"; do
  name=${sc%%|*}; args=${sc#*|}
  [[ $name =~ $ONLY ]] || continue
  for r in $(seq "$ROUNDS"); do
    for path in $PATHS; do run "$name" "$path" "$args"; done
  done
done

# Idle memory per client connection: RSS growth with 200 idle sessions.
IDLE_NOTE=""
for path in pgbouncer gatehouse; do
  case $path in
    pgbouncer) port=$BPORT; pw=$PW; pid=$BPID; db=bench ;;
    gatehouse) port=$GPORT; pw=$TOKEN; pid=$GPID; db=bench ;;
  esac
  before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  "$WORK/idleconns" -dsn "postgres://bench:$pw@127.0.0.1:$port/$db?sslmode=disable" -n 200 -hold 4s >/dev/null &
  holder=$!
  sleep 3
  during=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  wait "$holder"
  IDLE_NOTE+="| $path | $(( (during - before) / 200 )) KiB |"$'\n'
done

{
  echo "# pgbench: direct vs pgbouncer vs gatehouse"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo "- PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), pgbouncer $(pgbouncer --version | head -1 | awk '{print $2}'), gatehouse $(cd "$ROOT" && git rev-parse --short HEAD)"
  echo "- scale $SCALE, $ROUNDS interleaved rounds of ${DURATION}s; client, proxies and server share the machine"
  echo "- gatehouse writes its audit log (a chained event per statement, one more per failure) and records every session (statements, results, up to 100 rows per result); no TLS on any path (loopback)"
  [[ " $PATHS " == *" gh-policy "* ]] && echo "- gh-policy: gatehouse through a connection under the postgres-production preset"
  [[ " $PATHS " == *" gh-mask "* ]] && echo "- gh-mask: gatehouse through a connection masking with every default detector, and pgbench_accounts.filler masked whole (every row rewritten)"
  [[ " $PATHS " == *" gh-noaudit "* ]] && echo "- gh-noaudit: a second gatehouse started with --unsafe-no-audit (no audit log, no recordings)"
  [[ " $PATHS " == *" floor "* ]] && echo "- floor: bench/relayfloor, the cheapest relay (no parsing, audit or policy)"
  echo
  echo "Medians over rounds. cpu = the proxy process's user+system CPU per transaction. RSS = peak resident memory."
  echo
  python3 - "$RAW" "$PATHS" <<'PY'
import sys, statistics, collections
paths_wanted = sys.argv[2].split()
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, path, tps, lat, us = line.rstrip("\n").split("\t")
    rows.setdefault(name, collections.defaultdict(list))[path].append((float(tps), float(lat), float(us) if us != "-" else 0.0))
proxies = [p for p in paths_wanted if p != "direct"]
head = ["scenario"] + [f"{p} tps" for p in paths_wanted] + [f"{p}/direct" for p in proxies] + [f"{p} cpu µs/txn" for p in proxies] + [f"{p} lat ms" for p in paths_wanted]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for name, paths in rows.items():
    med = {p: tuple(statistics.median(v[i] for v in vals) for i in range(3)) for p, vals in paths.items()}
    d = med["direct"]
    cells = [name] + [f"{med[p][0]:.0f}" for p in paths_wanted] + [f"{med[p][0]/d[0]:.2f}" for p in proxies] + [f"{med[p][2]:.1f}" for p in proxies] + [f"{med[p][1]:.3f}" for p in paths_wanted]
    print("| " + " | ".join(cells) + " |")
PY
  echo
  echo "Peak RSS: pgbouncer $(hwm "$BPID") KiB, gatehouse $(hwm "$GPID") KiB."
  echo
  echo "Idle memory per client connection (RSS growth with 200 idle sessions):"
  echo
  echo "| proxy | per connection |"
  echo "|---|---|"
  printf '%s' "$IDLE_NOTE"
} | tee "$OUT"
echo "bench: report written to $OUT" >&2
