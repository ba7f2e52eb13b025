# Sourced by .ci/run: makes sure a PostgreSQL server answers for the store tests and exports
# COUNTERSIGN_TEST_POSTGRES (a database to connect to for creating the tests' own databases).
# The machine usually runs one on 127.0.0.1:5432 (trust auth); when none answers there, this
# installs PostgreSQL from Debian's packages if needed and starts a throw-away cluster on
# loopback as an unprivileged user (initdb + pg_ctl in a temporary directory), stopped on exit.
# CI_PG_PORT names the port to look at first (default 5432).

ci_pg_port="${CI_PG_PORT:-5432}"
if [[ -n "${COUNTERSIGN_TEST_POSTGRES:-}" ]]; then
    echo "PostgreSQL for the tests: given by COUNTERSIGN_TEST_POSTGRES"
elif (exec 3<>"/dev/tcp/127.0.0.1/$ci_pg_port") 2>/dev/null; then
    export COUNTERSIGN_TEST_POSTGRES="postgres://postgres@127.0.0.1:$ci_pg_port/postgres"
    echo "PostgreSQL for the tests: the server on 127.0.0.1:$ci_pg_port"
else
    if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    fi
    ci_pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    ci_pg_dir="$(mktemp -d /tmp/countersign-ci-pg.XXXXXX)"
    ci_pg_as=()
    if [[ "$(id -u)" == 0 ]]; then
        # initdb refuses to run as root.
        id -u countersign-ci >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin countersign-ci
        chown countersign-ci "$ci_pg_dir"
        ci_pg_as=(runuser -u countersign-ci --)
    fi
    ci_pg_port=55432
    while (exec 3<>"/dev/tcp/127.0.0.1/$ci_pg_port") 2>/dev/null; do
        ci_pg_port=$((ci_pg_port + 1))
    done
    "${ci_pg_as[@]}" "$ci_pg_bin/initdb" -D "$ci_pg_dir/data" -U postgres --auth=trust >/dev/null
    "${ci_pg_as[@]}" "$ci_pg_bin/pg_ctl" -D "$ci_pg_dir/data" -l "$ci_pg_dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $ci_pg_port -k $ci_pg_dir -c fsync=off" start >/dev/null
    ci_pg_stop() {
        "${ci_pg_as[@]}" "$ci_pg_bin/pg_ctl" -D "$ci_pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$ci_pg_dir"
    }
    trap ci_pg_stop EXIT
    export COUNTERSIGN_TEST_POSTGRES="postgres://postgres@127.0.0.1:$ci_pg_port/postgres"
    echo "PostgreSQL for the tests: a throw-away cluster on 127.0.0.1:$ci_pg_port"
fi
