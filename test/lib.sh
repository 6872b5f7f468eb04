# test/lib.sh: the set-up shared by `make test`, `make demo` and `make bench`.
#
# Sourced by test/run-tests, test/demo and test/bench/run.  It makes a fresh
# Debian machine ready (packages, when run as root), builds the extension,
# installs it into a private tree next to a copy of PostgreSQL's own binaries
# (so nothing is written to the system directories and an ordinary user can
# run it), and starts a throwaway cluster as an unprivileged user on a free
# port in a temporary directory.  Everything is removed again on exit.
#
# It is not a test: it prints what it does and stops at the first failure.

set -u

RET_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$RET_SRC/test/packages.sh"	# RET_PGVERSION, RET_PACKAGES, ret_install_packages

ret_log() { printf '== %s\n' "$*" >&2; }
ret_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ret_packages: install what is missing (root only; otherwise say what to do)
ret_packages()
{
	ret_install_packages || exit 1
}

# ret_pg_config: the pg_config of the server we build and test against
ret_pg_config()
{
	if [ -n "${PG_CONFIG:-}" ]; then
		echo "$PG_CONFIG"
	elif [ -x "/usr/lib/postgresql/$RET_PGVERSION/bin/pg_config" ]; then
		echo "/usr/lib/postgresql/$RET_PGVERSION/bin/pg_config"
	else
		command -v pg_config || ret_die "pg_config not found"
	fi
}

# ret_user: the unprivileged user that owns and runs the throwaway clusters
ret_user()
{
	if [ "$(id -u)" -ne 0 ]; then
		id -un
		return
	fi
	local u=${RETENTION_TEST_USER:-retention_test}
	if ! id "$u" >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home --shell /bin/sh "$u" ||
			ret_die "could not create user $u"
	fi
	echo "$u"
}

# ret_as_user CMD...: run CMD as the unprivileged user, with our environment
ret_as_user()
{
	if [ "$(id -u)" -eq 0 ]; then
		local v envs=()
		for v in PATH PGHOST PGPORT PGUSER PGDATABASE PERL5LIB TESTDIR TESTDATADIR TESTLOGDIR \
			PG_REGRESS PROVE_TESTS PGTZ RETENTION_TEST_KEEP RETENTION_BENCH_ROWS \
			RETENTION_REQUIRE_BROWSER; do
			[ -n "${!v:-}" ] && envs+=("$v=${!v}")
		done
		# from the caller's directory if the user may enter it (the TAP tests
		# run from RET_TMP/src), else from RET_TMP: PostgreSQL's programs
		# complain when they cannot go back to their starting directory, as
		# from a clone in /root
		runuser -u "$RET_USER" -- env HOME="$RET_TMP" "${envs[@]}" \
			sh -c 'cd "$1" 2>/dev/null || cd "$2" || exit 1; shift 2; exec "$@"' \
			sh "$PWD" "${RET_TMP:-/}" "$@"
	else
		"$@"
	fi
}

# ret_free_port: a TCP port nobody listens on (the cluster also listens only
# on a socket in its directory, but the port names that socket)
ret_free_port()
{
	perl -MIO::Socket::INET -e '
		for (1..200) {
			my $p = 20000 + int(rand(30000));
			my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
				LocalPort => $p, Listen => 1, ReuseAddr => 0) or next;
			close $s;
			next if -e "/tmp/.s.PGSQL.$p";
			print "$p\n"; exit 0;
		}
		exit 1;'
}

# ret_prepare: packages, build, private install, temp dir, user.  Sets
#   RET_TMP (temporary directory, owned by RET_USER), RET_BIN (binaries),
#   RET_PGXS (pgxs directory), PATH.
ret_prepare()
{
	ret_packages
	PG_CONFIG=$(ret_pg_config)
	export PG_CONFIG
	RET_PGXS=$(dirname "$("$PG_CONFIG" --pgxs)")/../..
	RET_PGXS=$(cd "$RET_PGXS" && pwd)
	RET_USER=$(ret_user)

	ret_log "building retention against $("$PG_CONFIG" --version)"
	make -C "$RET_SRC" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" COPT="-Werror ${COPT:-}" >&2 ||
		ret_die "build failed"

	RET_TMP=$(mktemp -d -p "${RETENTION_TMPDIR:-/tmp}")
	chmod 755 "$RET_TMP"
	trap ret_cleanup EXIT
	trap 'exit 130' INT TERM

	ret_install_private "$RET_TMP/install"
	chown "$RET_USER" "$RET_TMP"
	PATH="$RET_BIN:$PATH"
	export PATH
}

# ret_install_private DIR: `make install DESTDIR=DIR`, then complete DIR into
# a relocated copy of the PostgreSQL installation.  The server finds its
# share and lib directories relative to its own binary, so a copy of the
# binaries under DIR sees our extension and every system one.
ret_install_private()
{
	local dest=$1 bindir sharedir pkglibdir f
	bindir=$("$PG_CONFIG" --bindir)
	sharedir=$("$PG_CONFIG" --sharedir)
	pkglibdir=$("$PG_CONFIG" --pkglibdir)

	make -C "$RET_SRC" -s install DESTDIR="$dest" PG_CONFIG="$PG_CONFIG" >/dev/null ||
		ret_die "make install DESTDIR=$dest failed"

	mkdir -p "$dest$bindir" "$dest$sharedir/extension" "$dest$pkglibdir"
	for f in "$bindir"/*; do
		[ -e "$dest$bindir/$(basename "$f")" ] && continue
		cp "$f" "$dest$bindir/"
	done
	for f in "$sharedir"/*; do
		[ "$(basename "$f")" = extension ] && continue
		[ -e "$dest$sharedir/$(basename "$f")" ] || ln -s "$f" "$dest$sharedir/"
	done
	for f in "$sharedir"/extension/*; do
		[ -e "$dest$sharedir/extension/$(basename "$f")" ] || ln -s "$f" "$dest$sharedir/extension/"
	done
	for f in "$pkglibdir"/*; do
		[ -e "$dest$pkglibdir/$(basename "$f")" ] || ln -s "$f" "$dest$pkglibdir/"
	done
	RET_BIN=$dest$bindir
}

# ret_cluster_start NAME [CONF]: initdb and start a cluster under RET_TMP/NAME
# with test/postgresql.conf (or CONF).  Sets PGHOST, PGPORT, PGUSER, RET_DATA.
ret_cluster_start()
{
	local name=$1 conf=${2:-$RET_SRC/test/postgresql.conf}
	RET_DATA=$RET_TMP/$name
	PGPORT=$(ret_free_port) || ret_die "no free port"
	PGHOST=$RET_TMP
	PGUSER=postgres
	export PGHOST PGPORT PGUSER
	ret_log "starting a throwaway cluster as $RET_USER on port $PGPORT in $RET_DATA"
	ret_as_user initdb -D "$RET_DATA" -U postgres -A trust --no-sync \
		--locale=C.UTF-8 -E UTF8 >"$RET_TMP/initdb-$name.log" 2>&1 ||
		{ cat "$RET_TMP/initdb-$name.log" >&2; ret_die "initdb failed"; }
	cat "$conf" >>"$RET_DATA/postgresql.conf"
	[ -n "${RETENTION_VALGRIND:-}" ] && ret_valgrind_wrap
	ret_as_user pg_ctl -D "$RET_DATA" -w -t 60 -l "$RET_DATA/server.log" \
		-o "-p $PGPORT -k $RET_TMP -c listen_addresses=''" start >/dev/null ||
		{ cat "$RET_DATA/server.log" >&2; ret_die "server did not start"; }
	RET_CLUSTERS="${RET_CLUSTERS:-} $RET_DATA"
}

# ret_valgrind_wrap: from now on the server runs under valgrind (memcheck),
# every process logging to RET_TMP/valgrind/; `make valgrind-check`
ret_valgrind_wrap()
{
	command -v valgrind >/dev/null || ret_die "valgrind is not installed"
	[ -x "$RET_BIN/postgres.real" ] && return 0
	mkdir -p "$RET_TMP/valgrind"
	cp "$RET_SRC/test/valgrind.supp" "$RET_TMP/valgrind/"
	chown -R "$RET_USER" "$RET_TMP/valgrind"
	mv "$RET_BIN/postgres" "$RET_BIN/postgres.real"
	{
		echo '#!/bin/sh'
		echo '# postgres under valgrind, for make valgrind-check'
		echo "case \"\$1\" in -V|--version|-C) exec \"$RET_BIN/postgres.real\" \"\$@\" ;; esac"
		echo "exec valgrind --quiet --trace-children=yes --track-origins=yes --num-callers=30 \\"
		echo "	--error-limit=no --suppressions=\"$RET_TMP/valgrind/valgrind.supp\" \\"
		echo "	--log-file=\"$RET_TMP/valgrind/%p.log\" \"$RET_BIN/postgres.real\" \"\$@\""
	} >"$RET_BIN/postgres"
	chmod 755 "$RET_BIN/postgres"
}

# ret_valgrind_errors: the valgrind errors whose stack passes through
# retention's code (PostgreSQL's own, unsuppressed, are not ours to judge)
ret_valgrind_errors()
{
	local f
	for f in "$RET_TMP"/valgrind/*.log; do
		[ -s "$f" ] || continue
		awk -v ours='retention[.]so|[(][a-z]+[.]c:[0-9]+[)]' '
			 /^==[0-9]+== [A-Z]/ { if (err ~ ours) print err; err = $0; next }
			 /^==[0-9]+==    / { err = err "\n" $0; next }
			 END { if (err ~ ours) print err }' "$f"
	done
}

ret_cluster_stop()
{
	local d
	for d in ${RET_CLUSTERS:-}; do
		[ -f "$d/postmaster.pid" ] &&
			ret_as_user pg_ctl -D "$d" -m fast -w -t 60 stop >/dev/null 2>&1
	done
	RET_CLUSTERS=""
}

ret_cleanup()
{
	local rc=$?
	ret_cluster_stop
	if [ -n "${RETENTION_TEST_KEEP:-}" ]; then
		ret_log "kept $RET_TMP"
	elif [ -n "${RET_TMP:-}" ] && [ -d "$RET_TMP" ]; then
		rm -rf "$RET_TMP"
	fi
	exit $rc
}
