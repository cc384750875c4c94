#!/usr/bin/env bash
# Runs pgx v5's own test suite (the version in go.mod) twice, against
# PostgreSQL directly and through gatehouse, and compares the outcome of
# every test. Differences not listed in docs/compatibility.md fail the run.
#
#   scripts/pgx-compat.sh            # about 10 minutes
#   PGX_PACKAGES=./pgconn/... scripts/pgx-compat.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/gatehouse-pgx-XXXXXX)
PACKAGES=${PGX_PACKAGES:-./...}
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT

PGX=$(cd "$ROOT" && go list -m -f '{{.Dir}}' github.com/jackc/pgx/v5)
VERSION=$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/jackc/pgx/v5)
echo "pgx-compat: pgx $VERSION from $PGX" >&2

start_postgres
export PGPASSWORD=$PW
createdb -h 127.0.0.1 -p "$PGPORT" -U bench pgx_test
psql -X -q -h 127.0.0.1 -p "$PGPORT" -U bench -d pgx_test -v ON_ERROR_STOP=0 -f "$PGX/testsetup/postgresql_setup.sql" >/dev/null 2>&1
# pgx's ACL item test names the role "postgres", which a cluster initialised
# with another superuser lacks.
psql -X -q -h 127.0.0.1 -p "$PGPORT" -U bench -d pgx_test -c 'CREATE ROLE postgres SUPERUSER' >/dev/null 2>&1 || true
start_gatehouse pgx_test

cp -r "$PGX" "$WORK/pgx"
chmod -R u+w "$WORK/pgx"
cd "$WORK/pgx"

run() { # name conn-string
  echo "pgx-compat: running the suite $1" >&2
  PGX_TEST_DATABASE=$2 PGX_TEST_TCP_CONN_STRING=$2 go test -count=1 -p 1 -json -timeout 30m $PACKAGES >"$WORK/$1.json" 2>"$WORK/$1.err" || true
}
run direct "host=127.0.0.1 port=$PGPORT user=bench password=$PW dbname=pgx_test sslmode=disable"
run gatehouse "host=127.0.0.1 port=$GPORT user=bench password=$TOKEN dbname=pgx_test sslmode=disable"

python3 - "$WORK/direct.json" "$WORK/gatehouse.json" "$ROOT/docs/compatibility.md" "$VERSION" <<'PY'
import json, re, sys
def outcomes(path):
    out = {}
    for line in open(path):
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("Test") and ev.get("Action") in ("pass", "fail", "skip"):
            # Some subtest names embed random temporary paths: normalise
            # long digit runs so both runs name the same test alike.
            name = re.sub(r"\d{6,}", "N", ev["Test"])
            out[(ev["Package"].replace("github.com/jackc/pgx/v5", "pgx"), name)] = ev["Action"]
    return out
direct, gw = outcomes(sys.argv[1]), outcomes(sys.argv[2])
expected = set(re.findall(r"^\| `([^`]+)` \|", open(sys.argv[3]).read(), re.M))
diff = sorted(k for k in direct.keys() | gw.keys() if direct.get(k) != gw.get(k))
count = lambda o, a: sum(1 for v in o.values() if v == a)
print(f"pgx {sys.argv[4]}: {len(direct)} tests")
print(f"  direct:    {count(direct,'pass')} passed, {count(direct,'fail')} failed, {count(direct,'skip')} skipped")
print(f"  gatehouse: {count(gw,'pass')} passed, {count(gw,'fail')} failed, {count(gw,'skip')} skipped")
unexpected = []
for pkg, test in diff:
    name = f"{pkg} {test}"
    top = f"{pkg} {test.split('/')[0]}"
    mark = "expected" if name in expected or top in expected else "UNEXPECTED"
    if mark == "UNEXPECTED":
        unexpected.append(name)
    print(f"  {mark}: {name}: direct {direct.get((pkg, test), 'absent')}, gatehouse {gw.get((pkg, test), 'absent')}")
print(f"{len(diff)} differences, {len(unexpected)} not listed in docs/compatibility.md")
sys.exit(1 if unexpected else 0)
PY
