#!/bin/sh
# ./test.sh: `make test` on a Debian machine with nothing installed, not
# even make.  As root it first installs the packages the harness needs
# (test/packages.sh); as an ordinary user it says which to install if any
# is missing.  Then it runs `make test`, the whole suite; with arguments,
# test/run-tests with them instead (./test.sh --only regress types).
set -u
cd "$(dirname "$0")" || exit 1
. ./test/packages.sh
ret_install_packages || exit 1
[ $# -eq 0 ] && exec make test
exec test/run-tests "$@"
