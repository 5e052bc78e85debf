#!/usr/bin/env bash
# PostgreSQL: a private cluster (not the system one) on 127.0.0.1:$JOBSVC_PG_PORT, run as the
# `postgres` OS user because postgres refuses root. Role jobsvc/jobsvc (superuser: tests create
# schemas and databases), database jobservice. Tuned small and unsafe (fsync off): test data only.
# Sourced by stack.sh.

PG_USER=jobsvc
PG_PASSWORD=jobsvc
PG_DB=jobservice

# _pg_bin: newest installed server binaries folder, or nothing.
_pg_bin() {
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  [[ -x $d/pg_ctl ]] && echo "$d"
}

# _pg_dir: folder holding data/ and postgres.log, writable by the postgres user.
_pg_dir() { user_dir postgres postgres; }

_pg_psql() {
  PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 "$(_pg_bin)/psql" -X -q -h 127.0.0.1 -p "$JOBSVC_PG_PORT" \
    -U "$PG_USER" "$@"
}

postgres_install() {
  [[ -n $(_pg_bin) ]] || apt_install postgresql
  [[ -n $(_pg_bin) ]] || die "postgres server binaries not found under /usr/lib/postgresql"
  if ((EUID == 0)); then id postgres >/dev/null 2>&1 || die "OS user postgres is missing"; fi
}

postgres_start() {
  local bin dir data
  bin=$(_pg_bin)
  dir=$(_pg_dir)
  data=$dir/data
  if [[ ! -s $data/PG_VERSION ]]; then
    log "postgres: initdb in $data"
    rm -rf "$data"
    # The bootstrap superuser is jobsvc itself, with a password: no extra role to create.
    printf '%s\n' "$PG_PASSWORD" >"$dir/.pwfile"
    chmod 600 "$dir/.pwfile"
    ((EUID != 0)) || chown postgres: "$dir/.pwfile"
    run_as postgres "$bin/initdb" -D "$data" -U "$PG_USER" --pwfile="$dir/.pwfile" \
      -A scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
      || { rm -f "$dir/.pwfile"; cat "$dir/initdb.log" >&2; die "postgres initdb failed"; }
    rm -f "$dir/.pwfile"
    echo "include 'jobsvc.conf'" >>"$data/postgresql.conf"
  fi
  # Rewritten at every start so a changed JOBSVC_PG_PORT applies to an existing cluster.
  cat >"$data/jobsvc.conf" <<EOF
# Written by deploy/local/postgres.sh at every start.
listen_addresses = '127.0.0.1'
port = $JOBSVC_PG_PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_timezone = 'UTC'
EOF
  ((EUID != 0)) || chown postgres: "$data/jobsvc.conf"
  if ! run_as postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "postgres: starting on 127.0.0.1:$JOBSVC_PG_PORT (data $data)"
    run_as postgres "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
      || { tail -n 30 "$dir/postgres.log" >&2; die "postgres did not start (log: $dir/postgres.log)"; }
  fi
  wait_for "postgres" 30 "$bin/pg_isready" -q -h 127.0.0.1 -p "$JOBSVC_PG_PORT"
  if [[ $(_pg_psql -d postgres -tAc "select 1 from pg_database where datname = '$PG_DB'") != 1 ]]; then
    log "postgres: creating database $PG_DB"
    _pg_psql -d postgres -c "create database $PG_DB owner $PG_USER"
  fi
  wait_for "postgres" 30 postgres_health
}

postgres_health() {
  local bin
  bin=$(_pg_bin) || return 1
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$JOBSVC_PG_PORT" || return 1
  [[ $(_pg_psql -d "$PG_DB" -tAc 'select 1') == 1 ]]
}

postgres_stop() {
  local bin data
  bin=$(_pg_bin) || return 0
  data=$(_pg_dir)/data
  [[ -s $data/PG_VERSION ]] || return 0
  if run_as postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "stopping postgres"
    run_as postgres "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
  fi
}
