# retention: PostgreSQL extension enforcing CPCE Article L34-1 on CDR tables.
#
# The two commands a user needs (see README.md):
#   make demo   build, start a throwaway cluster, load sample CDRs, sweep, report
#   make test   the whole suite (pg_regress, isolation, TAP, static checks)
#               against the host's PostgreSQL 15; `make test PG=17` (or 18)
#               runs it in a Debian chroot with that version, built and
#               cached on first use (test/run-in-chroot, root only)
# Both work as root or as an ordinary user on a Debian machine with make; as root
# they install the packages they need first.
#   make deb        the Debian packages postgresql-NN-retention, in build/deb/
#   make test-deb   (root) build, install and try the package, then remove it
#                   (PG=17, PG=18: in that version's chroot, as make test)
#   make dossier DB=... [OUT=...]   a database's compliance dossier (HTML, PDF)
#   make test-dossier   the dossier and monitoring tests with a real browser and
#                   postgres_exporter (as root, installs chromium, poppler-utils,
#                   prometheus-postgres-exporter)
#   make test-clients  the real writers end to end (Kamailio + SIPp, FreeRADIUS +
#                   radclient, loopback only): test/clients/run

MODULE_big = retention
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

EXTENSION = retention
DATA = $(sort $(wildcard src/retention--*.sql))
PGFILEDESC = "retention - telecom data retention (CPCE L34-1)"

# pg_regress: sql/NAME.sql with expected/NAME.out, run in this order
REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=pgcrypto --load-extension=retention

# isolation specs and TAP tests live under test/
ISOLATION = $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=pgcrypto --load-extension=retention
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

EXTRA_CLEAN = results log tmp_check output_iso regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild everything when one changes
$(OBJS): $(wildcard src/*.h)
else
# No PGXS yet (postgresql-server-dev-NN missing): only the bootstrap targets
# below work; `make test` and `make demo` install it when run as root.
all:
	@echo "PGXS not found: install postgresql-server-dev-15, or run 'make test' as root" >&2
	@exit 1
endif

.PHONY: test demo bench fuzz valgrind-check deb test-deb fresh-machine dossier test-dossier \
	test-clients

# PG=NN: the same, against PostgreSQL NN in a Debian chroot
IN_CHROOT = $(if $(PG),test/run-in-chroot $(PG) )

test:
	@$(IN_CHROOT)test/run-tests

demo:
	@$(IN_CHROOT)test/demo

bench:
	@$(IN_CHROOT)test/bench/run

fuzz:
	@$(IN_CHROOT)test/fuzz/run

test-clients:
	@test/clients/run

valgrind-check:
	@RETENTION_VALGRIND=1 test/run-tests --only regress

deb:
	@$(IN_CHROOT)test/deb/build

test-deb:
	@$(IN_CHROOT)test/deb/run

# the README's two commands and Install section on a bare Debian 12 (root)
fresh-machine:
	@test/fresh-machine

# the compliance dossier of database DB (a name or a connection string)
dossier:
	@test -n "$(DB)" || { echo "usage: make dossier DB=dbname-or-conninfo [OUT=basename]" >&2; exit 2; }
	@tools/dossier $(if $(OUT),-o "$(OUT)") -d "$(DB)"

test-dossier:
	@test/test-dossier
