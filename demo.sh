#!/bin/sh
# ./demo.sh: `make demo` on a Debian machine with nothing installed, not
# even make.  As root it first installs the packages the harness needs
# (test/packages.sh: make, gcc, the PostgreSQL server and headers, ...); as
# an ordinary user it says which to install if any is missing.  Then it runs
# `make demo`: build, throwaway cluster, sample CDRs, the tour, the report.
set -u
cd "$(dirname "$0")" || exit 1
. ./test/packages.sh
ret_install_packages || exit 1
exec make demo
