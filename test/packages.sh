# test/packages.sh: the Debian packages the harness needs, and how it gets
# them.  POSIX sh, so that ./demo.sh and ./test.sh can use it on a bare
# Debian machine (no make, no compiler); test/lib.sh sources it too.
#
# Defines RET_PGVERSION, RET_PACKAGES, ret_missing_packages and
# ret_install_packages.  Function-local names start with _rp_.

RET_PGVERSION=${RET_PGVERSION:-15}
# (pgcrypto ships with postgresql-NN; postgresql-contrib is only a virtual
# package on Debian 13 and later)
RET_PACKAGES="make gcc postgresql-$RET_PGVERSION postgresql-server-dev-$RET_PGVERSION \
libipc-run-perl perl cppcheck"

# the packages of RET_PACKAGES that are not installed, on one line
ret_missing_packages()
{
	_rp_missing=
	for _rp in $RET_PACKAGES; do
		dpkg-query -W -f='${Status}' "$_rp" 2>/dev/null | grep -q "ok installed" ||
			_rp_missing="$_rp_missing $_rp"
	done
	echo "${_rp_missing# }"
}

# ret_install_packages: install what is missing.  As root, with apt-get,
# its output kept in a log shown only on failure; an ordinary user is told
# the command to run as root instead, and it returns 1.
#
# Installing postgresql-NN as a side effect must not leave a system cluster
# behind: when postgresql-common is not installed yet (so no one has chosen
# otherwise), it first writes create_main_cluster = false into
# /etc/postgresql-common/createcluster.conf, which the package keeps.
ret_install_packages()
{
	_rp_missing=$(ret_missing_packages)
	[ -z "$_rp_missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		cat >&2 <<-EOF
		error: missing Debian packages: $_rp_missing
		Install them as root:
		    apt-get update && apt-get install --no-install-recommends $_rp_missing
		or run this command once as root, which installs them the same way without
		creating the system cluster postgresql-$RET_PGVERSION otherwise creates.
		EOF
		return 1
	fi
	command -v apt-get >/dev/null 2>&1 || {
		echo "error: missing packages: $_rp_missing, and no apt-get to install them" >&2
		return 1
	}
	_rp_conf=/etc/postgresql-common/createcluster.conf
	if ! dpkg-query -W -f='${Status}' postgresql-common 2>/dev/null | grep -q "ok installed" &&
		[ ! -e "$_rp_conf" ]; then
		printf '== %s\n' "writing create_main_cluster = false into $_rp_conf" >&2
		mkdir -p "${_rp_conf%/*}" &&
			cat >"$_rp_conf" <<-EOF || return 1
			# Written by retention's test harness (test/packages.sh) before it
			# installed postgresql-common, so that installing postgresql-NN creates
			# no system cluster; the package keeps this file.  Copy the package's
			# default, /usr/share/postgresql-common/createcluster.conf, over it for
			# the next postgresql-NN package to create its "main" cluster again.
			create_main_cluster = false
			EOF
	fi
	printf '== %s\n' "installing: $_rp_missing (apt-get, as root)" >&2
	_rp_log=$(mktemp) || return 1
	if DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get update >"$_rp_log" 2>&1 &&
		DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 \
			apt-get install -y --no-install-recommends $_rp_missing >>"$_rp_log" 2>&1; then
		rm -f "$_rp_log"
		return 0
	fi
	cat "$_rp_log" >&2
	rm -f "$_rp_log"
	echo "error: apt-get install $_rp_missing failed" >&2
	return 1
}
