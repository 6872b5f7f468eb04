# test/writers/ddl.sh: the shipped schemas of the real writers the tests
# protect (docs/writers/), taken from Debian's own packages.  Sourced by
# test/run-tests; bash.
#
# ret_writer_ddl DIR: put into DIR
#   kamailio/acc-create.sql, kamailio/standard-create.sql, kamailio/kamailio.cfg
#   freeradius/schema.sql, freeradius/queries.conf
# from the installed packages (kamailio, kamailio-postgres-modules,
# freeradius-config) when they are there, else from the packages' .deb files,
# downloaded into build/writers/ (once) and unpacked without installing
# anything: installing kamailio would start a SIP proxy on this machine.

# package, path in it
_RW_FILES="kamailio-postgres-modules /usr/share/kamailio/postgres/acc-create.sql
kamailio-postgres-modules /usr/share/kamailio/postgres/standard-create.sql
kamailio /etc/kamailio/kamailio.cfg
freeradius-config /etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql
freeradius-config /etc/freeradius/3.0/mods-config/sql/main/postgresql/queries.conf"

ret_writer_ddl()
{
	local dir=$1 cache=$RET_SRC/build/writers pkg path deb dest
	mkdir -p "$dir/kamailio" "$dir/freeradius" || return 1
	while read -r pkg path; do
		case $path in
			*/kamailio*) dest=$dir/kamailio/$(basename "$path") ;;
			*) dest=$dir/freeradius/$(basename "$path") ;;
		esac
		if [ -r "$path" ]; then
			cp "$path" "$dest" || return 1
			continue
		fi
		deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1)
		if [ -z "$deb" ]; then
			mkdir -p "$cache" || return 1
			(cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1) ||
				{ [ "$(id -u)" -eq 0 ] && apt-get update >/dev/null 2>&1 &&
					(cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1); } || {
				echo "error: cannot get Debian package $pkg (for $path): run apt-get update as root, or install $pkg" >&2
				return 1
			}
			deb=$(ls "$cache/${pkg}"_*.deb | head -1)
		fi
		dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$path" >"$dest" 2>/dev/null && [ -s "$dest" ] || {
			echo "error: $deb has no $path" >&2
			return 1
		}
	done <<<"$_RW_FILES"
	return 0
}
