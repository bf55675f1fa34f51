# Shared by tools/run and tools/test: find the server binaries and run
# commands as the cluster owner (initdb refuses root).
PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=$("$PG_CONFIG" --bindir)

as_owner() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@")
	else
		env PATH="$PGBIN:$PATH" "$@"
	fi
}

# A free TCP port, reserved with a lock directory shared with the TAP
# framework's port directory so that concurrent runs do not collide.
free_port() {
	local p
	mkdir -p "$PG_TEST_PORT_DIR" && chmod 1777 "$PG_TEST_PORT_DIR" 2>/dev/null
	for p in $(shuf -i 20000-29999 -n 200); do
		(echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
		mkdir "$PG_TEST_PORT_DIR/dbops.$p" 2>/dev/null || continue
		echo "$p"
		return 0
	done
	return 1
}

export PG_TEST_PORT_DIR=${PG_TEST_PORT_DIR:-/tmp/dbops_portlock}

# start_cluster DIR PORT [extra postgresql.conf lines...]
start_cluster() {
	local dir=$1 port=$2
	shift 2
	as_owner initdb -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		return 1
	}
	{
		echo "port = $port"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = 'pg_cron,dbops'"
		echo "fsync = off"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	as_owner pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null || {
		tail -20 "$dir/server.log" >&2
		return 1
	}
}

stop_cluster() {
	as_owner pg_ctl -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}
