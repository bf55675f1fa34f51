# dbops: PGXS build.
#
#   make && make install && make installcheck   plain PGXS, against a running server
#   make run     install what is missing, build, install, start a throwaway
#                cluster with shared_preload_libraries = 'pg_cron,dbops' and
#                print dbops.health_report()  (PG=17 or PG=18: in that version's root)
#   make stop    stop and remove that cluster
#   make test    install what is missing, then build and run every
#                pg_regress, isolation and TAP test against throwaway clusters
#                on PostgreSQL 15, 17 and 18  (PG="17" for some of them),
#                the Debian packages (tools/pkgtest) and META.json
#   make dist    dbops-X.Y.zip for PGXN: git archive of HEAD under dbops-X.Y/
#   dpkg-buildpackage -us -uc -b   the Debian package (debian/)

EXTENSION   = dbops
# the version being built: dbops.control's default_version
EXTVERSION  = $(shell sed -nE "s/^default_version = '([^']+)'.*/\1/p" $(srcdir)/dbops.control)

MODULE_big  = dbops
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The current version's install script is assembled from one SQL fragment
# per capability, in this order (each fragment sits beside the C file of its
# capability).  Released versions are frozen under updates/: the install
# script of 1.0 as shipped, and one hand-written upgrade script per step.
SQL_PARTS   = src/dbops.sql src/health.sql src/statements.sql src/locktree.sql src/bloat.sql \
              src/reaper.sql src/ledger.sql src/lint.sql src/retention.sql src/backfill.sql \
              src/schedule.sql
DATA_built  = dbops--$(EXTVERSION).sql
DATA        = updates/dbops--1.0.sql $(wildcard updates/dbops--*--*.sql)
DOCS        = $(wildcard doc/*.md)
EXTRA_CLEAN = dbops--$(EXTVERSION).sql

PG_CPPFLAGS = -I$(srcdir)/src -DDBOPS_VERSION='"$(EXTVERSION)"'

REGRESS       = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS  = --load-extension=dbops
# Specs that prepare transactions need max_prepared_transactions > 0, which a
# server has not by default: make installcheck leaves them out, and
# tools/test runs them on a cluster that has it.
ISOLATION_PREPARED = $(patsubst test/specs/%.spec,%,$(shell grep -l 'PREPARE TRANSACTION' test/specs/*.spec))
ISOLATION     = $(filter-out $(ISOLATION_PREPARED),$(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test --load-extension=dbops
# TAP tests: test/t/*.pl, on PostgreSQL::Test::Cluster; test/DbopsCluster.pm
# builds their clusters.  make installcheck runs them with PGXS's
# prove_installcheck: cd to the source directory, then
#   prove -I <pgxs>/src/test/perl -I $(srcdir) -I ./test $(PROVE_FLAGS) test/t/*.pl
# with PG_REGRESS from the installation and the clusters' files under
# ./tmp_check (TESTDIR up to 15, TESTDATADIR and TESTLOGDIR from 16 on);
# make installcheck REGRESS= ISOLATION= [PROVE_TESTS=test/t/001_health.pl]
# runs only them.
# Every test starts clusters of its own: it needs the server binaries and an
# installed dbops, no running server, and a user other than root (initdb
# refuses root).  make test (tools/test) runs each file with perl, the same
# variables and the framework's and DbopsCluster's directories on the include
# path, from a copy of test/ the cluster owner can read, several at a time.
TAP_TESTS     = 1
PROVE_TESTS   = test/t/*.pl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The pages of doc/ go to share/doc/.../dbops/, not among the other
# extensions' pages (PGXS would put them in .../extension/).
docmoduledir = dbops

# DbopsCluster for the TAP tests (set after the include: Makefile.global sets
# PG_PROVE_FLAGS; PROVE_FLAGS stays the user's, e.g. PROVE_FLAGS=--verbose).
PG_PROVE_FLAGS += -I ./test

# A change to a header rebuilds every object.
$(OBJS): $(wildcard src/*.h)

dbops--$(EXTVERSION).sql: $(wildcard $(SQL_PARTS))
	cat $^ > $@

# PG selects the PostgreSQL versions: make test runs 15 (the host's), 17 and
# 18 (in Debian root file systems, tools/roots); make test PG=17 runs one;
# make run PG=17 starts the throwaway cluster on 17.
PG ?=
.PHONY: run stop test deps dist
deps:
	tools/deps
run:
	tools/run start $(PG)
stop:
	tools/run stop $(PG)
test:
	tools/matrix $(PG)

# The archive PGXN takes: the committed tree of HEAD under dbops-X.Y/.
dist:
	git archive --format=zip --prefix=$(EXTENSION)-$(EXTVERSION)/ -o $(EXTENSION)-$(EXTVERSION).zip HEAD
