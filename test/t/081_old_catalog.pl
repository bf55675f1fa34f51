# A server that runs the current dbops library while a database's catalog is
# still at 1.0 (a package upgrade before ALTER EXTENSION dbops UPDATE):
#
#  - every function of the 1.0 catalog, listed from pg_proc and checked
#    against the list below (1.0 is frozen: its exact count), is called with
#    realistic arguments, which must work, and with NULL and hostile ones;
#    trigger functions through their tables.  After each call the server
#    accepts a new connection, and every error has a SQLSTATE other than
#    XX000 and is never about an object of the current version that the
#    1.0 catalog does not have (or, if it is, it says to run ALTER EXTENSION
#    dbops UPDATE).  Calls over data 1.0 let in that 1.0's SQL cannot
#    handle (a policy whose keep is too long for a timestamp, a pg_cron job
#    whose schedule dbops cannot read) must work or raise an error that
#    names the culprit or the update.  The messages are printed for a
#    reader to judge;
#  - the reaper worker and the ledger's event writer work against the 1.0
#    tables: idle sessions matched by a policy are terminated and logged,
#    a migration opened with migration_begin() that fails is recorded as
#    failed; the server log shows no crash and no error of a worker, for
#    any call;
#  - ALTER EXTENSION dbops UPDATE, with a migration opened under 1.0 still
#    in progress, keeps every row written under 1.0, records that migration
#    when it commits, and health(), migrate(), purge and the reaper work
#    after it.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# The reaper works in dbops.reaper_database; the ledger's event writer is a
# dynamic background worker (enough worker slots for it next to pg_cron's
# launcher and the reaper).  %b names the process that wrote each log line.
my $node = dbops_primary('old_catalog', cron => 'postgres', pg_cron => 1, dbops => '1.0',
	conf => [
		"dbops.reaper_database = 'postgres'", 'dbops.reaper_naptime = 1',
		'max_worker_processes = 16', "log_line_prefix = '%m [%p] %b '" ]);

my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'dbops'");
isnt($current, '1.0', "the library's default version ($current) is newer than 1.0");

$node->safe_psql(
	'postgres', q{
CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
CREATE ROLE idler LOGIN;
CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, v text);
CREATE INDEX events_created_at_idx ON events (created_at);
INSERT INTO events (created_at, v)
  SELECT now() - i * interval '1 hour', repeat('x', i % 50) FROM generate_series(1, 2000) i;
CREATE TABLE noidx (ts timestamptz, v int);
INSERT INTO noidx SELECT now() - i * interval '1 day', i FROM generate_series(1, 100) i;
CREATE TABLE dated (d date NOT NULL);
CREATE INDEX ON dated (d);
INSERT INTO dated SELECT current_date - i FROM generate_series(1, 100) i;
CREATE TABLE wrongtype (ts text);
CREATE INDEX ON wrongtype (ts);
CREATE TABLE part (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
CREATE TABLE part_2000 PARTITION OF part FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');
CREATE TABLE part_2001 PARTITION OF part FOR VALUES FROM ('2001-01-01') TO ('2002-01-01');
CREATE TABLE part_now PARTITION OF part FOR VALUES FROM ('2002-01-01') TO ('3000-01-01');
CREATE INDEX ON part (ts);
INSERT INTO part VALUES ('2000-06-01', 1), ('2001-06-01', 2), (now(), 3),
  (now() - interval '400 days', 4);
CREATE TABLE referenced (id int PRIMARY KEY, ts timestamptz NOT NULL);
CREATE INDEX ON referenced (ts);
CREATE TABLE referencing (rid int REFERENCES referenced ON DELETE CASCADE);
CREATE VIEW v_events AS SELECT * FROM events;
CREATE SEQUENCE s1;
CREATE TABLE locked_t (a int);
CREATE TABLE schema_migrations (version text);
INSERT INTO schema_migrations VALUES ('0001'), ('0002'), (NULL), ('');
CREATE TABLE alembic_version (version_num text);
INSERT INTO alembic_version VALUES ('abc123');
CREATE TABLE flyway_schema_history (installed_rank int, version text, description text,
  installed_by text, installed_on timestamp, execution_time int, success boolean);
INSERT INTO flyway_schema_history VALUES (1, '1.1', 'init', 'deployer', now(), 5, true),
  (2, '1.2', 'broken', 'deployer', now(), 5, false);
CREATE TABLE bad_ledger (x int);
CREATE TABLE hostile_ledger (version text);
INSERT INTO hostile_ledger VALUES (E'bad\nversion'), (repeat('v', 300));
GRANT SELECT ON ALL TABLES IN SCHEMA public TO monitor, idler;
});
is( $node->safe_psql('postgres',
		q{SELECT extversion FROM pg_extension WHERE extname = 'dbops'}),
	'1.0',
	'the catalog is at 1.0');

# The functions of the 1.0 catalog.  1.0 is frozen: this is all of them.
my @functions_1_0 = (
	'dbops._bloat_stats(oid[])',
	'dbops._ledger_check_checksum(text)',
	'dbops._ledger_check_version(text)',
	'dbops._ledger_covering_baseline(text)',
	'dbops._ledger_in_transaction_block()',
	'dbops._ledger_lock()',
	'dbops._ledger_writable(text)',
	'dbops._migration_arm(text,text,text,text,text,text,text,text,text,integer)',
	'dbops._migration_capture_ddl()',
	'dbops._migration_decide(text,text,text[],boolean,text)',
	'dbops._migration_events_append_only()',
	'dbops._migration_failed(text,text,text,text,text)',
	'dbops._migration_ledger_finish()',
	'dbops._migration_record_failure(text,text,text,text,text,text,text,text,text,integer)',
	'dbops._purge_batch_sql(regclass,name,text,boolean,boolean)',
	'dbops._purge_begin(boolean)',
	'dbops._purge_busy_sessions()',
	'dbops._purge_lock(integer)',
	'dbops._purge_old_partitions(regclass,name,timestamp with time zone)',
	'dbops._purge_unlock(integer)',
	'dbops._require_positive_interval(text,interval,text)',
	'dbops._retention_validate(regclass,name,interval,integer)',
	'dbops.add_retention_policy(regclass,name,interval,integer,bigint,interval,boolean,boolean)',
	'dbops.alter_retention_policy(regclass,interval,integer,name,bigint,interval,boolean,boolean)',
	'dbops.bloat(regclass,text,bigint,double precision,integer)',
	'dbops.bloat_snapshot(interval,text,bigint)',
	'dbops.cancel_blockers(interval,boolean,boolean)',
	'dbops.cron_jobs()',
	'dbops.cron_next_run(text,timestamp with time zone,text)',
	'dbops.cron_prev_run(text,timestamp with time zone,text)',
	'dbops.cron_status()',
	'dbops.health()',
	'dbops.health_checks()',
	'dbops.health_json()',
	'dbops.health_metrics()',
	'dbops.health_overall(text[])',
	'dbops.health_snapshot(interval)',
	'dbops.health_status()',
	'dbops.health_thresholds_validate()',
	'dbops.health_trend(text,interval)',
	'dbops.lock_tree()',
	'dbops.lock_tree_text(integer)',
	'dbops.migrate(text,text,text,text[],boolean)',
	'dbops.migration_baseline(text,text)',
	'dbops.migration_begin(text,text,text,text[],boolean)',
	'dbops.migration_checksum(text)',
	'dbops.migration_import(regclass)',
	'dbops.migration_pending(text,text)',
	'dbops.migration_repair(text,text)',
	'dbops.migration_rollback(text,text)',
	'dbops.migration_status(jsonb)',
	'dbops.migration_version_key(text)',
	'dbops.purge(regclass,boolean)',
	'dbops.purge_preview(regclass)',
	'dbops.reap_idle(interval,text[],boolean,text)',
	'dbops.reaper_events()',
	'dbops.reaper_status()',
	'dbops.remove_retention_policy(regclass)',
	'dbops.replica_replay_lag_ms()',
	'dbops.require_pg_cron()',
	'dbops.schedule(text,text,text,text,interval,text,interval,interval,interval)',
	'dbops.unschedule(text)');
my @catalog = split /\n/,
  $node->safe_psql('postgres',
	q{SELECT p.oid::regprocedure::text COLLATE "C" FROM pg_proc p
	  WHERE p.pronamespace = 'dbops'::regnamespace ORDER BY 1});
is(scalar(@catalog), 62, 'the 1.0 catalog has 62 functions and procedures');
is(join("\n", @catalog), join("\n", sort @functions_1_0),
	'the 1.0 catalog has exactly the functions this test calls');
my %fn_of = map { /^dbops\.(\w+)\(/; ($1 => $_) } @functions_1_0;

# Names of the current version's functions and types that 1.0 does not
# have, from a fresh install in another database: an error that mentions
# one of them means the library expected the current catalog.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION dbops');
# the checks the library registers (health_checks() of 1.0 lists them all)
my $nchecks = $node->safe_psql('fresh', 'SELECT count(*) FROM dbops.health_checks()');
my $names_sql = q{
	SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = 'dbops'::regnamespace
	UNION SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = 'dbops'::regnamespace
	UNION SELECT c.relname || '.' || a.attname FROM pg_attribute a
	  JOIN pg_class c ON c.oid = a.attrelid
	 WHERE c.relnamespace = 'dbops'::regnamespace AND c.relkind IN ('r', 'p', 'v')
	   AND a.attnum > 0 AND NOT a.attisdropped};
my %old_names = map { $_ => 1 } split /\n/, $node->safe_psql('postgres', $names_sql);
my @new_names = grep { !$old_names{$_} } split /\n/, $node->safe_psql('fresh', $names_sql);
# a new column is named in messages by its column name alone, unless 1.0
# already has a column or an argument of that name (query, kind)
my %old_words = map { $_ => 1 } split /\n/, $node->safe_psql('postgres', q{
	SELECT a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	 WHERE c.relnamespace = 'dbops'::regnamespace AND a.attnum > 0
	UNION SELECT unnest(p.proargnames) FROM pg_proc p
	 WHERE p.pronamespace = 'dbops'::regnamespace});
my @new_words = sort grep { !$old_words{$_} } map { /\.(\w+)$/ ? $1 : $_ } @new_names;
ok(scalar(@new_words) > 0, scalar(@new_words) . ' names of the current version are not in 1.0');
note('names the 1.0 catalog lacks: ' . join(', ', @new_words));
my $new_name_re = join('|', map { quotemeta } @new_words);
my $mismatch_re = qr/\b(?:$new_name_re)\b|could not find function|undefined symbol|could not load library/;
# PostgreSQL's own errors for an object it looked for and did not find (the
# errors dbops raises for a caller's argument are worded differently)
my $undefined_re = qr/^(?:function|procedure)\ dbops\.\S+\(.*\)\ does\ not\ exist
	|^(?:relation|type)\ "dbops\.\w+"\ does\ not\ exist
	|^column\ (?:"[^"]+"|\w+\.\w+)\ does\ not\ exist$
	|^column\ "[^"]+"\ of\ relation\ "\w+"\ does\ not\ exist$/x;

# A lock tree for the lock tree functions: a session holds a lock another
# one waits for.
my $blocker = $node->background_psql('postgres', on_error_stop => 0);
$blocker->query_safe('BEGIN; LOCK TABLE locked_t IN ACCESS EXCLUSIVE MODE');
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->{stdin} .= "SELECT count(*) FROM locked_t;\n";
$waiter->{run}->pump_nb();
$node->poll_query_until('postgres',
	q{SELECT count(*) >= 2 FROM pg_stat_activity WHERE query LIKE '%locked_t%'
	    AND (state = 'idle in transaction' OR wait_event_type = 'Lock')})
  or die 'no lock tree';

# The calls, in order (later ones rely on earlier ones).  ok => 1: a
# realistic call, which must work (allow => SQLSTATEs it raises on
# purpose); want => the output it must print.  The dbops functions named in
# the SQL count as called; covers => the trigger functions it fires.
my $cs_100 = q{dbops.migration_checksum('CREATE TABLE mig100 (a int)')};
my $who = q{'postgres', 'postgres', 'psql', NULL, pg_backend_pid()};
my @calls = (
	# health
	{ sql => 'SELECT count(*) > 20 FROM dbops.health()', ok => 1, want => 't' },
	{ sql => 'SELECT count(*) FROM dbops.health_checks()', ok => 1, want => $nchecks },
	# the migrations check reads dbops.migration_steps only where it exists
	{
		sql => q{SELECT status || ': ' || detail FROM dbops.health() WHERE check_name = 'migrations'},
		ok => 1,
		want => 'ok: no failed, drifted, rolled back or unfinished migration'
	},
	# the checks new in 1.1 have no thresholds row in a 1.0 catalog: they
	# run ungraded, as any check without a row
	{
		sql => q{SELECT string_agg(check_name || ':' || status || ':' || coalesce(warning::text, '-')
		                           || '/' || coalesce(critical::text, '-'), ' ' ORDER BY check_name)
		           FROM dbops.health() WHERE check_name IN ('long_transaction', 'xmin_horizon',
		             'unused_indexes', 'duplicate_indexes', 'fk_without_index', 'seq_scan_tables',
		             'disk_space', 'slow_queries')},
		ok => 1,
		want => 'disk_space:ok:-/- duplicate_indexes:ok:-/- fk_without_index:ok:-/- long_transaction:ok:-/- '
		  . 'seq_scan_tables:ok:-/- slow_queries:ok:-/- unused_indexes:ok:-/- xmin_horizon:ok:-/-'
	},
	{ sql => 'SELECT dbops.health_status() IS NOT NULL', ok => 1, want => 't' },
	{ sql => q{SELECT dbops.health_json() ->> 'status' IS NOT NULL}, ok => 1, want => 't' },
	{ sql => q{SELECT dbops.health_metrics() LIKE '%dbops_health_status%'}, ok => 1, want => 't' },
	{
		sql => q{SELECT dbops.health_overall('{ok,warning}'), dbops.health_overall('{}'),
		           dbops.health_overall(NULL), dbops.health_overall('{NULL}')},
		ok => 1,
		want => 'warning|ok||ok'
	},
	{ sql => q{SELECT dbops.health_overall('{{critical,ok},{ok,ok}}')} },
	{
		sql => q{SET ROLE monitor; SELECT count(*) > 20 FROM dbops.health();
		         SELECT dbops.health_status() IS NOT NULL; SELECT length(dbops.health_metrics()) > 0},
		ok => 1
	},
	{ sql => 'SET ROLE idler; SELECT count(*) > 20 FROM dbops.health()', ok => 1 },
	{
		sql => q{UPDATE dbops.health_thresholds SET warning = 70 WHERE check_name = 'connections'},
		ok => 1,
		covers => ['health_thresholds_validate']
	},
	{
		sql => q{INSERT INTO dbops.health_thresholds (check_name, warning, critical)
		         VALUES ('long_query', 100, 200)},
		ok => 1,
		covers => ['health_thresholds_validate']
	},
	{ sql => q{INSERT INTO dbops.health_thresholds (check_name, warning) VALUES ('bogus', 1)} },
	{ sql => q{INSERT INTO dbops.health_thresholds (check_name, warning) VALUES (NULL, 1)} },
	{ sql => q{UPDATE dbops.health_thresholds SET warning = 'NaN' WHERE check_name = 'deadlocks'} },
	{
		sql => q{UPDATE dbops.health_thresholds SET warning = 500, critical = 100
		         WHERE check_name = 'deadlocks'}
	},
	{
		sql => q{UPDATE dbops.health_thresholds SET warning = 'Infinity', critical = 'Infinity'
		         WHERE check_name = 'temp_files'}
	},
	{ sql => q{UPDATE dbops.health_thresholds SET critical = 1e400 WHERE check_name = 'sequences'} },
	{
		sql => q{UPDATE dbops.health_thresholds SET critical = -1e400
		         WHERE check_name = 'cache_hit_ratio'}
	},
	{
		sql => q{SELECT count(*) > 20 FROM dbops.health(); SELECT length(dbops.health_metrics()) > 0},
		ok => 1,
		want => "t\nt"
	},
	{ sql => 'SELECT * FROM dbops.health_snapshot()', ok => 1 },
	{ sql => q{SELECT * FROM dbops.health_snapshot('1 day')}, ok => 1 },
	{ sql => 'SELECT * FROM dbops.health_snapshot(NULL)' },
	{ sql => q{SELECT * FROM dbops.health_snapshot('-1 s')} },
	{ sql => q{SELECT * FROM dbops.health_snapshot('0')} },
	{ sql => q{SELECT * FROM dbops.health_snapshot('178000000 years')} },
	{ sql => q{SELECT count(*) > 0 FROM dbops.health_trend('connections')}, ok => 1, want => 't' },
	{ sql => q{SELECT count(*) FROM dbops.health_trend('connections', '1 hour')}, ok => 1 },
	{ sql => 'SELECT * FROM dbops.health_trend(NULL)' },
	{ sql => q{SELECT * FROM dbops.health_trend('bogus')} },
	{ sql => q{SELECT * FROM dbops.health_trend('connections', NULL)} },
	{ sql => q{SELECT * FROM dbops.health_trend('connections', '-1 day')} },
	{ sql => q{SELECT count(*) FROM dbops.health_trend('connections', '178000000 years')} },
	{ sql => q{SELECT * FROM dbops.health_trend(repeat('a', 70000))} },
	{ sql => q{SELECT dbops._require_positive_interval('x', '1 s')}, ok => 1 },
	{ sql => q{SELECT dbops._require_positive_interval('x', NULL)} },
	{ sql => q{SELECT dbops._require_positive_interval('x', '-1 s', 'a hint')} },
	{ sql => 'SELECT dbops._require_positive_interval(NULL, NULL, NULL)' },
	{ sql => q{SELECT dbops._require_positive_interval('x', '-178000000 years')} },

	# lock tree
	{ sql => 'SELECT count(*) >= 2 FROM dbops.lock_tree()', ok => 1, want => 't' },
	{ sql => 'SELECT count(*) >= 2 FROM dbops.lock_tree_text()', ok => 1, want => 't' },
	{ sql => 'SELECT * FROM dbops.lock_tree_text(0)', ok => 1 },
	{ sql => 'SELECT * FROM dbops.lock_tree_text(NULL)' },
	{ sql => 'SELECT * FROM dbops.lock_tree_text(-1)' },
	{ sql => 'SELECT count(*) FROM dbops.lock_tree_text(2147483647)' },
	{ sql => q{SET ROLE monitor; SELECT count(*) FROM dbops.lock_tree()}, ok => 1 },
	{ sql => 'SELECT count(*) FROM dbops.cancel_blockers()', ok => 1 },
	{ sql => q{SELECT count(*) >= 1 FROM dbops.cancel_blockers('1 ms')}, ok => 1, want => 't' },
	{ sql => 'SELECT * FROM dbops.cancel_blockers(NULL)' },
	{ sql => q{SELECT * FROM dbops.cancel_blockers('-1 s')} },
	{ sql => q{SELECT * FROM dbops.cancel_blockers('178000000 years')} },
	{ sql => 'SELECT * FROM dbops.cancel_blockers(NULL, NULL, NULL)' },
	{ sql => q{SELECT * FROM dbops.cancel_blockers('0', NULL, false)} },
	{ sql => 'SET ROLE idler; SELECT * FROM dbops.cancel_blockers()' },
	# ends the lock tree: terminates the session holding the lock
	{
		sql => q{SELECT count(*) FROM dbops.cancel_blockers('1 ms', true, false) WHERE signalled},
		ok => 1,
		want => '1'
	},

	# bloat
	{ sql => q{SELECT count(*) > 0 FROM dbops.bloat('events')}, ok => 1, want => 't' },
	{ sql => q{SELECT count(*) > 0 FROM dbops.bloat(NULL, 'stats')}, ok => 1, want => 't' },
	{ sql => q{SELECT count(*) FROM dbops.bloat('events', 'exact')}, ok => 1 },
	{ sql => q{SELECT count(*) FROM dbops.bloat('events', 'sample', 10, 2, 42)}, ok => 1 },
	{ sql => q{SELECT count(*) FROM dbops.bloat('part')} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('events_created_at_idx')}, ok => 1 },
	{ sql => q{SET ROLE monitor; SELECT count(*) FROM dbops.bloat(NULL, 'stats')}, ok => 1 },
	{ sql => q{SELECT * FROM dbops.bloat('events', 'bogus')} },
	{ sql => q{SELECT * FROM dbops.bloat('events', NULL)} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('events', 'auto', -1)} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('events', 'auto', 0)} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('events', 'auto', 9223372036854775807)} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('events', 'sample', 100, 'NaN')} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('events', 'sample', 100, -1)} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('events', 'sample', 100, 'Infinity', -2147483648)} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('v_events')} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('s1')} },
	{ sql => q{SELECT count(*) FROM dbops.bloat(0::oid::regclass)} },
	{ sql => q{SELECT count(*) FROM dbops.bloat(4294967295::oid::regclass)} },
	{ sql => q{SELECT count(*) FROM dbops.bloat('pg_class', 'exact')} },
	{ sql => q{SELECT count(*) FROM dbops._bloat_stats('{}')}, ok => 1, want => '0' },
	{ sql => 'SELECT count(*) FROM dbops._bloat_stats(NULL)', ok => 1 },
	{
		sql => q{SELECT count(*) FROM dbops._bloat_stats(ARRAY['events'::regclass::oid])},
		ok => 1,
		want => '1'
	},
	{ sql => q{SELECT count(*) FROM dbops._bloat_stats('{0,4294967295}')} },
	{ sql => 'SELECT * FROM dbops.bloat_snapshot()', ok => 1 },
	{ sql => q{SELECT * FROM dbops.bloat_snapshot('1 day', 'stats', 0)}, ok => 1 },
	{ sql => 'SELECT * FROM dbops.bloat_snapshot(NULL)' },
	{ sql => q{SELECT * FROM dbops.bloat_snapshot('-1 s')} },
	{ sql => q{SELECT * FROM dbops.bloat_snapshot('1 day', NULL)} },
	{ sql => q{SELECT * FROM dbops.bloat_snapshot('1 day', 'bogus')} },
	{ sql => q{SELECT * FROM dbops.bloat_snapshot('1 day', 'auto', -1)} },
	{ sql => q{SELECT * FROM dbops.bloat_snapshot('1 day', 'auto', NULL)} },
	{ sql => q{SELECT * FROM dbops.bloat_snapshot('178000000 years')} },

	# reaper
	{ sql => 'SELECT worker_pid IS NOT NULL FROM dbops.reaper_status()', ok => 1, want => 't' },
	{ sql => 'SELECT count(*) >= 0 FROM dbops.reaper_events()', ok => 1, want => 't' },
	{
		sql => q{SET ROLE monitor; SELECT sweeps > 0 FROM dbops.reaper_status();
		         SELECT count(*) >= 0 FROM dbops.reaper_events()},
		ok => 1,
		want => "t\nt"
	},
	{ sql => 'SET ROLE idler; SELECT * FROM dbops.reaper_status()' },
	{ sql => q{SELECT count(*) FROM dbops.reap_idle('1 hour')}, ok => 1 },
	{
		sql => q{SELECT count(*) FROM dbops.reap_idle('1 s', '{idle,"idle in transaction"}', true, 'cancel')},
		ok => 1
	},
	{ sql => q{SELECT count(*) FROM dbops.reap_idle('1 s', '{idle}', false)}, ok => 1 },
	{ sql => 'SELECT * FROM dbops.reap_idle(NULL)' },
	{ sql => q{SELECT * FROM dbops.reap_idle('-1 s')} },
	{ sql => q{SELECT * FROM dbops.reap_idle('0')} },
	{ sql => q{SELECT count(*) FROM dbops.reap_idle('178000000 years')} },
	{ sql => q{SELECT count(*) FROM dbops.reap_idle('1 us')} },
	{ sql => q{SELECT * FROM dbops.reap_idle('1 s', '{}')} },
	{ sql => q{SELECT * FROM dbops.reap_idle('1 s', NULL)} },
	{ sql => q{SELECT * FROM dbops.reap_idle('1 s', '{NULL}')} },
	{ sql => q{SELECT * FROM dbops.reap_idle('1 s', '{bogus}')} },
	{ sql => q{SELECT * FROM dbops.reap_idle('1 s', '{idle}', NULL)} },
	{ sql => q{SELECT * FROM dbops.reap_idle('1 s', '{idle}', true, 'bogus')} },
	{ sql => q{SELECT * FROM dbops.reap_idle('1 s', '{idle}', true, NULL)} },
	{ sql => q{SELECT count(*) FROM dbops.reap_idle('1 s', '{{idle,idle},{idle,idle}}')} },
	{ sql => q{SET ROLE idler; SELECT * FROM dbops.reap_idle('1 s')} },
	# rows the 1.0 catalog accepts (it has no validation trigger on them)
	{
		sql => q{INSERT INTO dbops.reaper_policies (application_name, idle_timeout, note)
		         VALUES ('nomatch%', '178000000 years', 'huge timeout')}
	},
	{
		sql => q{INSERT INTO dbops.reaper_policies (application_name, idle_timeout, note)
		         VALUES ('x\', '1 hour', 'pattern LIKE refuses')}
	},
	{ sql => q{INSERT INTO dbops.reaper_policies (state, idle_timeout) VALUES ('bogus', '1 s')} },
	{ sql => q{INSERT INTO dbops.reaper_policies (idle_timeout) VALUES ('-1 s')} },
	{ sql => q{INSERT INTO dbops.reaper_policies (keep_min, idle_timeout) VALUES (-1, '1 s')} },
	{
		sql => q{INSERT INTO dbops.reaper_policies (role_name, action, note)
		         VALUES (repeat('r', 100), 'exempt', 'no such role')},
		ok => 1
	},
	{
		sql => q{INSERT INTO dbops.reaper_policies (client_addr, idle_timeout, action, note)
		         VALUES ('10.0.0.0/8', '1 min', 'cancel', 'by address')},
		ok => 1
	},
	{ sql => q{UPDATE dbops.reaper_policies SET enabled = false WHERE note = 'no such role'}, ok => 1 },
	{ sql => q{SELECT count(*) FROM dbops.reap_idle('1 s')}, ok => 1 },

	# migration ledger
	{ sql => q{SELECT length(dbops.migration_checksum('SELECT 1'))}, ok => 1, want => '64' },
	{ sql => 'SELECT dbops.migration_checksum(NULL) IS NULL', ok => 1, want => 't' },
	{ sql => q{SELECT length(dbops.migration_checksum(''))}, ok => 1, want => '64' },
	{
		sql => q{SELECT dbops.migration_checksum(E'a\r\nb  \n\n') = dbops.migration_checksum(E'a\nb')},
		ok => 1,
		want => 't'
	},
	{ sql => q{SELECT length(dbops.migration_checksum(repeat('a', 1000000)))}, ok => 1 },
	{
		sql => q{SELECT dbops.migration_version_key('1.2'), dbops.migration_version_key('0015_x'),
		           dbops.migration_version_key('abc'), dbops.migration_version_key(NULL)},
		ok => 1,
		want => '{1,2}|{15}||'
	},
	{ sql => q{SELECT dbops.migration_version_key(repeat('9', 140000)) IS NULL} },
	{ sql => q{SELECT cardinality(dbops.migration_version_key('1.' || repeat('9', 1001)))} },
	{ sql => 'SELECT dbops._ledger_in_transaction_block()', ok => 1, want => 'f' },
	{ sql => 'BEGIN; SELECT dbops._ledger_in_transaction_block(); COMMIT', ok => 1, want => 't' },
	{ sql => q{SELECT dbops._ledger_writable('apply a migration')}, ok => 1 },
	{ sql => 'SELECT dbops._ledger_writable(NULL)' },
	{ sql => q{SELECT dbops._ledger_check_version('1')}, ok => 1 },
	{ sql => 'SELECT dbops._ledger_check_version(NULL)' },
	{ sql => q{SELECT dbops._ledger_check_version('')} },
	{ sql => q{SELECT dbops._ledger_check_version(' 1')} },
	{ sql => 'SELECT dbops._ledger_check_checksum(NULL)', ok => 1 },
	{ sql => q{SELECT dbops._ledger_check_checksum(repeat('a', 64))}, ok => 1 },
	{ sql => q{SELECT dbops._ledger_check_checksum('bad')} },
	{ sql => 'SELECT dbops._ledger_lock()', ok => 1 },
	{ sql => q{SELECT dbops._ledger_covering_baseline('1') IS NULL}, ok => 1, want => 't' },
	{ sql => 'SELECT dbops._ledger_covering_baseline(NULL)', ok => 1 },
	{
		sql => q{SELECT dbops.migrate('100', 'create mig100', 'CREATE TABLE mig100 (a int)')},
		ok => 1,
		want => 'applied',
		covers => ['_migration_capture_ddl']
	},
	{
		sql => q{SELECT dbops.migrate('100', 'create mig100', 'CREATE TABLE mig100 (a int)')},
		ok => 1,
		want => 'skipped'
	},
	{ sql => q{SELECT dbops.migrate('100', 'edited', 'CREATE TABLE mig100 (a int, b int)')} },
	{
		sql => q{SELECT dbops.migrate('101', 'needs 100', 'ALTER TABLE mig100 ADD COLUMN b int', '{100}')},
		ok => 1,
		want => 'applied'
	},
	{ sql => q{SELECT dbops.migrate('050', 'older', 'SELECT 1')} },
	{ sql => q{SELECT dbops.migrate('050', 'older', 'SELECT 1', '{}', true)}, ok => 1, want => 'applied' },
	{ sql => q{SELECT dbops.migrate('102', 'needs a missing one', 'SELECT 1', '{999}')} },
	{ sql => q{SELECT dbops.migrate('103', 'fails', 'SELECT 1/0')} },
	{ sql => q{SELECT dbops.migrate(NULL, 'x', 'SELECT 1')} },
	{ sql => q{SELECT dbops.migrate('', 'x', 'SELECT 1')} },
	{ sql => q{SELECT dbops.migrate(' 104', 'x', 'SELECT 1')} },
	{ sql => q{SELECT dbops.migrate(E'104\n', 'x', 'SELECT 1')} },
	{ sql => q{SELECT dbops.migrate('104', 'x', NULL)} },
	{ sql => q{SELECT dbops.migrate('104', 'x', 'SELECT 1', NULL)} },
	{ sql => q{SELECT dbops.migrate('104', 'x', 'SELECT 1', '{NULL}')} },
	{ sql => q{SELECT dbops.migrate(repeat('v', 3000), 'x', 'SELECT 1')} },
	{ sql => q{SELECT dbops.migrate('105', repeat('d', 100000), 'SELECT 1')} },
	{ sql => q{SELECT dbops.migrate('106', 'empty body', '')} },
	{ sql => q{SELECT dbops.migrate('107', 'rolls back', 'ROLLBACK')} },
	{ sql => q{SELECT dbops.migrate('108', 'nested', $$SELECT dbops.migration_begin('109', 'x')$$)} },
	{ sql => q{SET ROLE idler; SELECT dbops.migrate('110', 'x', 'SELECT 1')} },
	{ sql => q{SELECT dbops.migration_pending('100')}, ok => 1, want => 'f' },
	{ sql => q{SELECT dbops.migration_pending('999')}, ok => 1, want => 't' },
	{ sql => qq{SELECT dbops.migration_pending('100', $cs_100)}, ok => 1, want => 'f' },
	{ sql => q{BEGIN; SELECT dbops.migration_pending('200'); COMMIT}, ok => 1, want => 't' },
	{ sql => q{SELECT dbops.migration_pending('100', repeat('a', 64))} },
	{ sql => 'SELECT dbops.migration_pending(NULL)' },
	{ sql => q{SELECT dbops.migration_pending('')} },
	{ sql => q{SELECT dbops.migration_pending('100', 'bad')} },
	{ sql => q{SELECT dbops.migration_begin('200', 'outside a transaction')} },
	{
		sql => q{BEGIN; SELECT dbops.migration_begin('200', 'via psql');
		         CREATE TABLE mig200 (a int); COMMIT},
		ok => 1,
		want => 'open',
		covers => [ '_migration_arm', '_migration_ledger_finish', '_migration_capture_ddl' ]
	},
	# a failure while the migration is open: the event writer records it
	{
		sql => q{BEGIN; SELECT dbops.migration_begin('201', 'fails');
		         CREATE TABLE mig201 (a int); SELECT 1/0; ROLLBACK},
		ok => 1,
		allow => ['22012'],
		want => 'open'
	},
	{ sql => q{BEGIN; SELECT dbops.migration_begin('100', 'again'); ROLLBACK} },
	{
		sql => q{BEGIN; SELECT dbops.migration_begin('202', 'a');
		         SELECT dbops.migration_begin('203', 'b'); ROLLBACK}
	},
	{ sql => q{BEGIN; SELECT dbops.migration_begin(NULL, 'x'); ROLLBACK} },
	{ sql => q{BEGIN; SELECT dbops.migration_begin('204', 'x', 'bad'); ROLLBACK} },
	{ sql => q{BEGIN; SELECT dbops.migration_begin('204', 'x', NULL, '{NULL}'); ROLLBACK} },
	{
		sql => q{BEGIN; SELECT dbops.migration_begin('205', 'savepoint'); SAVEPOINT s;
		         SELECT 1/0; ROLLBACK TO s; CREATE TABLE mig205 (a int); COMMIT},
		ok => 1,
		allow => ['22012'],
		want => 'open'
	},
	{ sql => 'SELECT count(*) > 0 FROM dbops.migration_status()', ok => 1, want => 't' },
	{
		sql => q{SELECT drift FROM dbops.migration_status('{"100": "abc"}') WHERE version = '100'},
		ok => 1,
		want => 't'
	},
	{ sql => 'SELECT count(*) > 0 FROM dbops.migration_status(NULL)', ok => 1, want => 't' },
	{ sql => q{SET ROLE monitor; SELECT count(*) > 0 FROM dbops.migration_status()}, ok => 1, want => 't' },
	{ sql => q{SELECT count(*) FROM dbops.migration_status('[]')} },
	{ sql => q{SELECT count(*) FROM dbops.migration_status('null')} },
	{ sql => q{SELECT count(*) FROM dbops.migration_status('{"x": 1, "y": null}')} },
	{
		sql => q{SELECT dbops.migration_rollback('101', 'ALTER TABLE mig100 DROP COLUMN b')},
		ok => 1,
		want => 'rolled_back'
	},
	{ sql => q{SELECT dbops.migration_rollback('050')}, ok => 1, want => 'rolled_back' },
	{ sql => q{SELECT dbops.migration_rollback('999')} },
	{ sql => 'SELECT dbops.migration_rollback(NULL)' },
	{ sql => q{SELECT dbops.migration_rollback('100', 'SELECT 1/0')} },
	{ sql => q{BEGIN; SELECT dbops.migration_rollback('100', ''); ROLLBACK} },
	{ sql => q{SELECT dbops.migration_baseline('010')}, ok => 1, want => 'baseline' },
	{ sql => q{SELECT dbops.migration_baseline('010')} },
	{ sql => 'SELECT dbops.migration_baseline(NULL)' },
	{ sql => q{SELECT dbops.migration_baseline('')} },
	{ sql => q{SELECT dbops.migration_baseline(repeat('w', 3000))} },
	{ sql => q{SELECT dbops.migration_repair('103')}, ok => 1, want => 'acknowledged' },
	{ sql => qq{SELECT dbops.migration_repair('100', $cs_100)}, ok => 1, want => 'repaired' },
	{ sql => q{SELECT dbops.migration_repair('999')} },
	{ sql => q{SELECT dbops.migration_repair('100', 'bad')} },
	{ sql => 'SELECT dbops.migration_repair(NULL)' },
	{ sql => q{SELECT dbops.migration_import('schema_migrations')}, ok => 1, want => '2' },
	{ sql => q{SELECT dbops.migration_import('alembic_version')}, ok => 1, want => '1' },
	{ sql => q{SELECT dbops.migration_import('flyway_schema_history')}, ok => 1, want => '1' },
	{ sql => q{SELECT dbops.migration_import('bad_ledger')} },
	{ sql => 'SELECT dbops.migration_import(NULL)' },
	{ sql => q{SELECT dbops.migration_import('s1')} },
	{ sql => q{SELECT dbops.migration_import(0::oid::regclass)} },
	{ sql => q{SELECT dbops.migration_import('hostile_ledger')} },
	{
		sql => q{SELECT dbops._migration_decide('300', NULL, '{}', NULL, 'migrate')},
		ok => 1,
		want => 'apply'
	},
	{ sql => 'SELECT dbops._migration_decide(NULL, NULL, NULL, NULL, NULL)' },
	{ sql => q{SELECT dbops._migration_decide('100', repeat('a', 64), '{}', NULL, 'migration_begin')} },
	{
		sql => q{SELECT dbops._migration_failed('130', 'migrate', NULL, '22012', 'division by zero')},
		ok => 1,
		want => 't'
	},
	{ sql => 'SELECT dbops._migration_failed(NULL, NULL, NULL, NULL, NULL)' },
	{
		sql => qq{SELECT dbops._migration_record_failure('131', 'migrate', NULL, '22012', 'msg', $who)},
		ok => 1,
		want => 't'
	},
	{
		sql => q{SELECT dbops._migration_record_failure('131', NULL, NULL, NULL, NULL, NULL,
		                                                NULL, NULL, NULL, NULL)}
	},
	{
		sql => qq{SELECT dbops._migration_record_failure(repeat('9', 300), 'migrate', NULL, NULL,
		                                                 NULL, $who)}
	},
	{
		sql => q{SELECT dbops._migration_record_failure('132', 'op', NULL, NULL, repeat('m', 100000),
		                                                'postgres', 'postgres', NULL, 'not an address', -1)}
	},
	{ sql => qq{SET ROLE idler; SELECT dbops._migration_record_failure('133', 'migrate', NULL, NULL, NULL, $who)} },
	{
		sql => qq{SELECT dbops._migration_arm('134', 'migration_begin', NULL, NULL, NULL, $who)},
		ok => 1,
		want => 'f'
	},
	{
		sql => qq{BEGIN; SELECT dbops._migration_arm('135', 'migration_begin', NULL, NULL, NULL, $who);
		          CREATE TABLE arm135 (a int); SELECT 1/0; ROLLBACK}
	},
	{
		sql => q{BEGIN; SELECT dbops._migration_arm(NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		                                           NULL, NULL, NULL); ROLLBACK},
		ok => 1,
		want => 'f'
	},
	{
		sql => q{INSERT INTO dbops.migration_events (version, event, message)
		         VALUES ('140', 'repair', 'written by hand')},
		ok => 1
	},
	{
		sql => q{UPDATE dbops.migration_events SET message = 'changed' WHERE version = '140'},
		covers => ['_migration_events_append_only']
	},
	{ sql => q{DELETE FROM dbops.migration_events WHERE version = '140'} },
	{ sql => 'TRUNCATE dbops.migration_events' },
	{ sql => q{INSERT INTO dbops.migration_events (version, event) VALUES ('141', 'bogus')} },

	# retention
	{
		sql => q{SELECT dbops.add_retention_policy('events', 'created_at', '30 days', 100) > 0},
		ok => 1,
		want => 't'
	},
	{ sql => q{SELECT dbops.add_retention_policy('part', 'ts', '365 days', 100) > 0}, ok => 1, want => 't' },
	{
		sql => q{SELECT dbops.add_retention_policy('referenced', 'ts', '1 day') > 0},
		ok => 1,
		want => 't'
	},
	{ sql => q{SELECT count(*) FROM dbops.purge_preview()}, ok => 1, want => '3' },
	{ sql => q{SELECT rows_to_delete > 0 FROM dbops.purge_preview('events')}, ok => 1, want => 't' },
	{ sql => 'SELECT count(*) FROM dbops.purge_preview(NULL)', ok => 1, want => '3' },
	{ sql => 'CALL dbops.purge(dry_run => true)', ok => 1 },
	{ sql => 'CALL dbops.purge()', ok => 1 },
	{ sql => q{CALL dbops.purge('events')}, ok => 1 },
	{
		sql => q{SELECT count(*) FROM dbops.purge_runs WHERE status = 'done' AND rows_deleted > 0},
		ok => 1,
		want => '2'
	},
	{ sql => q{SELECT * FROM dbops.purge_preview('s1')} },
	{ sql => q{CALL dbops.purge('s1')} },
	{ sql => 'CALL dbops.purge(NULL, NULL)' },
	{ sql => 'BEGIN; CALL dbops.purge(); COMMIT' },
	{ sql => q{SELECT dbops.add_retention_policy('events', 'created_at', '30 days')} },
	{ sql => q{SELECT dbops.add_retention_policy('v_events', 'created_at', '1 day')} },
	{ sql => q{SELECT dbops.add_retention_policy('wrongtype', 'ts', '1 day')} },
	{ sql => q{SELECT dbops.add_retention_policy('dated', 'nope', '1 day')} },
	{ sql => q{SELECT dbops.add_retention_policy('dated', 'd', '-1 day')} },
	{ sql => q{SELECT dbops.add_retention_policy('dated', 'd', '0')} },
	{ sql => q{SELECT dbops.add_retention_policy('dated', 'd', '1 day', 0)} },
	{ sql => q{SELECT dbops.add_retention_policy('dated', 'd', '1 day', 10, 0)} },
	{ sql => q{SELECT dbops.add_retention_policy('dated', 'd', '1 day', 10, NULL, '-1 s')} },
	{ sql => 'SELECT dbops.add_retention_policy(NULL, NULL, NULL)' },
	{ sql => q{SELECT dbops.add_retention_policy(0::oid::regclass, 'd', '1 day')} },
	{ sql => q{SELECT dbops.alter_retention_policy('events', keep => '60 days')}, ok => 1 },
	{
		sql => q{SELECT dbops.alter_retention_policy('events', batch_size => 500,
		           max_rows_per_run => 0, max_run_time => '0')},
		ok => 1
	},
	{ sql => 'SELECT dbops.alter_retention_policy(NULL)' },
	{ sql => q{SELECT dbops.alter_retention_policy('s1', keep => '1 day')} },
	{ sql => q{SELECT dbops.alter_retention_policy('events', batch_size => 0)} },
	{ sql => q{SELECT dbops.alter_retention_policy('events', time_column => 'nope')} },
	{ sql => q{SELECT dbops.alter_retention_policy('events', max_rows_per_run => -1)} },
	{ sql => q{SELECT dbops.alter_retention_policy('events', max_run_time => '-1 s')} },
	{ sql => q{SELECT dbops.alter_retention_policy('events', keep => '-1 day')} },
	{
		sql => q{BEGIN; SELECT dbops.alter_retention_policy('events', keep => '178000000 years');
		         SELECT count(*) FROM dbops.purge_preview('events'); ROLLBACK}
	},
	{ sql => q{SELECT dbops.remove_retention_policy('referenced')}, ok => 1 },
	{ sql => 'SELECT dbops.remove_retention_policy(NULL)' },
	{ sql => q{SELECT dbops.remove_retention_policy('s1')} },
	{ sql => 'SELECT pid = pg_backend_pid() FROM dbops._purge_begin()', ok => 1, want => 't' },
	{ sql => 'SELECT batch_max > 0 FROM dbops._purge_begin(true)', ok => 1, want => 't' },
	{ sql => 'SELECT batch_max > 0 FROM dbops._purge_begin(NULL)', ok => 1, want => 't' },
	{ sql => 'BEGIN; SELECT * FROM dbops._purge_begin(); ROLLBACK' },
	{ sql => 'SELECT dbops._purge_busy_sessions() >= 0', ok => 1, want => 't' },
	{ sql => 'SELECT dbops._purge_lock(1), dbops._purge_unlock(1)', ok => 1, want => 't|t' },
	{ sql => 'SELECT dbops._purge_lock(NULL) IS NULL', ok => 1, want => 't' },
	{ sql => 'SELECT dbops._purge_unlock(-1)', ok => 1, want => 'f' },
	{ sql => 'SELECT dbops._purge_lock(1), dbops._purge_lock(2)' },
	{ sql => 'SELECT dbops._purge_lock(2147483647), dbops._purge_unlock(-2147483648)' },
	{
		sql => q{SELECT dbops._purge_batch_sql('events', 'created_at', 'bound') LIKE 'SELECT%'},
		ok => 1,
		want => 't'
	},
	{
		sql => q{SELECT dbops._purge_batch_sql('events', 'created_at', 'range', true, true) LIKE 'DELETE%'},
		ok => 1,
		want => 't'
	},
	{
		sql => q{SELECT dbops._purge_batch_sql('events', 'created_at', 'skip_locked') LIKE 'WITH%'},
		ok => 1,
		want => 't'
	},
	{ sql => q{SELECT dbops._purge_batch_sql('events', 'created_at', 'bogus')} },
	{ sql => q{SELECT dbops._purge_batch_sql('events', 'nope', 'bound')} },
	{ sql => 'SELECT dbops._purge_batch_sql(NULL, NULL, NULL)' },
	{ sql => q{SELECT dbops._purge_batch_sql('v_events', 'created_at', 'range', NULL, NULL)} },
	{ sql => q{SELECT count(*) FROM dbops._purge_old_partitions('part', 'ts', now())}, ok => 1 },
	{
		sql => q{SELECT count(*) FROM dbops._purge_old_partitions('events', 'created_at', now())},
		ok => 1,
		want => '0'
	},
	{ sql => 'SELECT count(*) FROM dbops._purge_old_partitions(NULL, NULL, NULL)', ok => 1 },
	{ sql => q{SELECT count(*) FROM dbops._purge_old_partitions('part', 'ts', 'infinity')} },
	{ sql => q{SELECT count(*) FROM dbops._purge_old_partitions('part', 'ts', '-infinity')} },
	{ sql => q{SELECT dbops._retention_validate('events', 'created_at', '1 day', 10)}, ok => 1 },
	{ sql => 'SELECT dbops._retention_validate(NULL, NULL, NULL, NULL)' },
	{ sql => 'SELECT dbops.replica_replay_lag_ms()', ok => 1, want => '0' },
	{
		sql => q{SET ROLE idler; SELECT dbops.add_retention_policy('noidx', 'ts', '1 day')}
	},
	# policies that cannot be purged, as 1.0 let them be written
	{ sql => q{SELECT dbops.add_retention_policy('noidx', 'ts', '1 day') > 0} },
	{ sql => q{SELECT dbops.add_retention_policy('dated', 'd', '178000000 years') > 0} },
	{
		sql => q{INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size)
		         VALUES ('wrongtype', 'ts', '1 day', 10)}
	},
	{
		sql => q{CREATE TABLE dropme (ts timestamptz NOT NULL); CREATE INDEX ON dropme (ts);
		         SELECT dbops.add_retention_policy('dropme', 'ts', '1 day') > 0; DROP TABLE dropme}
	},
	{ sql => q{UPDATE dbops.retention_policies SET batch_size = 1000 WHERE relation = 'events'::regclass}, ok => 1 },
	# 1.0's purge_preview() computes every cutoff in SQL: a keep too long for
	# a timestamp fails it, and nothing of the library runs before
	{ sql => 'SELECT count(*) FROM dbops.purge_preview()' },
	# a dry run is 1.0's purge_preview() as well: the same error
	{ sql => 'CALL dbops.purge(dry_run => true)' },
	# CALL dbops.purge() takes each policy's lock in the library
	# (dbops._purge_lock()) before it computes the cutoff: wanted, a purge
	# that stops at that policy with an error naming it and the update, not
	# a bare "timestamp out of range"
	{ sql => 'CALL dbops.purge()', clear => qr/ALTER EXTENSION dbops UPDATE|\bdated\b/ },
	{ sql => q{CALL dbops.purge('dated')}, clear => qr/ALTER EXTENSION dbops UPDATE|\bdated\b/ },
	{ sql => q{CALL dbops.purge('events')}, ok => 1 },
	{ sql => 'SELECT count(*) > 20 FROM dbops.health()', ok => 1, want => 't' },
	{
		sql => q{SELECT status <> 'ok' FROM dbops.health() WHERE check_name = 'retention'},
		ok => 1,
		want => 't'
	},

	# scheduling
	{ sql => 'SELECT installed FROM dbops.cron_status()', ok => 1, want => 't' },
	{ sql => 'SELECT dbops.require_pg_cron() IS NOT NULL', ok => 1, want => 't' },
	{ sql => 'SELECT count(*) >= 0 FROM dbops.cron_jobs()', ok => 1, want => 't' },
	{ sql => 'SELECT count(*) >= 0 FROM dbops.jobs', ok => 1, want => 't' },
	{ sql => q{SET ROLE monitor; SELECT count(*) >= 0 FROM dbops.jobs}, ok => 1, want => 't' },
	{ sql => q{SELECT dbops.cron_next_run('*/5 * * * *') > now()}, ok => 1, want => 't' },
	{ sql => q{SELECT dbops.cron_prev_run('@daily', now(), 'UTC') <= now()}, ok => 1, want => 't' },
	{ sql => q{SELECT dbops.cron_next_run('@reboot') IS NULL}, ok => 1, want => 't' },
	{ sql => q{SELECT dbops.cron_next_run('0 0 30 2 *') IS NULL}, ok => 1, want => 't' },
	{ sql => 'SELECT dbops.cron_next_run(NULL)' },
	{ sql => q{SELECT dbops.cron_next_run('')} },
	{ sql => q{SELECT dbops.cron_next_run('bogus')} },
	{ sql => q{SELECT dbops.cron_next_run('* * * * *', NULL)} },
	{ sql => q{SELECT dbops.cron_next_run('* * * * *', 'infinity')} },
	{ sql => q{SELECT dbops.cron_next_run('* * * * *', now(), 'Mars/Phobos')} },
	{ sql => q{SELECT dbops.cron_next_run('1 seconds')} },
	{ sql => q{SELECT dbops.cron_next_run(repeat('9', 140000))} },
	{ sql => q{SELECT dbops.cron_next_run('* * * * *', '294276-12-31')} },
	{ sql => q{SELECT dbops.cron_prev_run('* * * * *', '4713-01-01 BC')} },
	{ sql => q{SELECT dbops.cron_prev_run('* * * * *', now(), '')} },
	{ sql => 'SELECT count(*) FROM dbops.schedule()', ok => 1, want => '4' },
	{
		sql => q{SELECT count(*) FROM dbops.schedule() WHERE action = 'unchanged'},
		ok => 1,
		want => '4'
	},
	{ sql => q{SELECT count(*) FROM dbops.schedule(purge => NULL, reap => '*/10 * * * *')}, ok => 1 },
	{ sql => q{SELECT * FROM dbops.schedule(purge => 'bogus')} },
	{ sql => q{SELECT * FROM dbops.schedule(cron_history_keep => '-1 s')} },
	{ sql => q{SELECT * FROM dbops.schedule(database => 'nodb')} },
	{ sql => q{SELECT * FROM dbops.schedule(database => repeat('x', 70))} },
	{ sql => q{SELECT * FROM dbops.schedule(reap => '* * * * *', reap_idle_for => '-1 s')} },
	{ sql => q{SELECT * FROM dbops.schedule(reap => '* * * * *', reap_idle_for => NULL)} },
	{ sql => q{SELECT count(*) FROM dbops.schedule(health_history_keep => '178000000 years')} },
	{ sql => q{SET ROLE idler; SELECT * FROM dbops.schedule()} },
	{ sql => 'SELECT count(*) > 0 FROM dbops.unschedule()', ok => 1, want => 't' },
	{ sql => q{SELECT count(*) FROM dbops.unschedule('postgres')}, ok => 1, want => '0' },
	{ sql => q{SELECT count(*) FROM dbops.unschedule('nodb')}, ok => 1, want => '0' },
	{ sql => 'SELECT count(*) FROM dbops.unschedule(NULL)', ok => 1, want => '0' },
	{ sql => q{SELECT count(*) FROM dbops.unschedule('')}, ok => 1, want => '0' },
	# jobs that stay, on a schedule that never fires (30 February)
	{
		sql => q{SELECT count(*) FROM dbops.schedule(purge => '0 0 30 2 *',
		           health_snapshot => '0 1 30 2 *', bloat_snapshot => '0 2 30 2 *',
		           cron_history_keep => NULL)},
		ok => 1,
		want => '3'
	},
	# a pg_cron job dbops did not create, with a schedule that never fires
	{ sql => q{SELECT cron.schedule('not-dbops', '0 0 30 2 *', 'SELECT 1') > 0}, ok => 1, want => 't' },
	{ sql => q{SELECT count(*) FROM dbops.cron_jobs() WHERE job_name = 'not-dbops'}, ok => 1, want => '1' },
	{
		sql => q{SELECT status FROM dbops.health() WHERE check_name = 'cron_failures'},
		ok => 1,
		want => 'ok'
	},
	# a job whose schedule pg_cron accepts and dbops cannot read (text after
	# the fifth field); it never fires.  1.0's cron_jobs() computes every
	# job's next run with dbops.cron_next_run(): wanted, the jobs listed
	# (that one without a next run, as the current version does) or an
	# error that says to update, not one about a schedule the caller never
	# wrote
	{
		sql => q{SELECT cron.schedule('odd-schedule', '0 0 30 2 * trailing text', 'SELECT 1') > 0},
		ok => 1,
		want => 't'
	},
	{ sql => 'SELECT count(*) FROM dbops.jobs', clear => qr/ALTER EXTENSION dbops UPDATE/ },
	{ sql => q{SET ROLE monitor; SELECT count(*) FROM dbops.jobs}, clear => qr/ALTER EXTENSION dbops UPDATE/ },
	{ sql => 'SELECT count(*) FROM dbops.cron_jobs()', clear => qr/ALTER EXTENSION dbops UPDATE/ },
	{
		sql => q{SELECT status <> 'unknown' OR coalesce(hint, '') LIKE '%ALTER EXTENSION dbops UPDATE%'
		           FROM dbops.health() WHERE check_name = 'cron_failures'},
		ok => 1,
		want => 't'
	},
);

# Split psql's verbose reports (psql -f -: each starts with psql:<stdin>:N:).
sub reports
{
	my ($err) = @_;
	my @out;
	for my $r (split /(?=^psql:<stdin>:\d+: (?:ERROR|FATAL|PANIC|WARNING|NOTICE|INFO|LOG):)/m, $err)
	{
		next unless $r =~ /^psql:<stdin>:\d+: (ERROR|FATAL|PANIC|WARNING|NOTICE|INFO|LOG):  (?:([0-9A-Z]{5}): )?([^\n]*)/;
		my ($level, $state, $msg) = ($1, $2 // '', $3);
		my ($hint) = $r =~ /^HINT:  ([^\n]*)/m;
		push @out,
		  {
			level => $level,
			state => $state,
			msg => $msg,
			hint => $hint,
			text => $r
		  };
	}
	return @out;
}

sub alive
{
	my ($ret, $out) = $node->psql('postgres', 'SELECT 1');
	return $ret == 0 && $out eq '1';
}

sub oneline
{
	my ($s, $max) = @_;
	$s =~ s/\s+/ /g;
	return length($s) > $max ? substr($s, 0, $max - 3) . '...' : $s;
}

my (%called, %messages, @message_order);

# Run one call on a new connection; returns the problems found (empty: fine).
sub check_call
{
	my ($c) = @_;
	my $sql = $c->{sql};
	my ($ret, $out, $err) =
	  $node->psql('postgres', "\\set VERBOSITY verbose\n$sql;\n", on_error_stop => 0);
	my @problems;
	my %allow = map { $_ => 1 } @{ $c->{allow} // [] };

	$called{$_}++ for grep { $fn_of{$_} } $sql =~ /\bdbops\.(\w+)\s*\(/g;
	$called{$_}++ for @{ $c->{covers} // [] };

	push @problems, "psql exited with $ret" if $ret != 0;
	push @problems, 'the connection was lost'
	  if $err =~ /server closed the connection|connection to server was lost|no connection to the server/;
	for my $r (reports($err))
	{
		next unless $r->{level} =~ /^(ERROR|FATAL|PANIC|WARNING)$/;
		my $key = "$r->{level} $r->{state}: " . oneline($r->{msg}, 300)
		  . ($r->{hint} ? "\n        HINT: " . oneline($r->{hint}, 300) : '');
		push @message_order, $key unless $messages{$key};
		push @{ $messages{$key} }, $sql;
		push @problems, "$r->{level} $r->{state}" if $r->{level} =~ /^(FATAL|PANIC)$/;
		push @problems, "internal error: $r->{msg}" if $r->{state} eq 'XX000';
		push @problems, "I/O or system error: $r->{msg}" if $r->{state} =~ /^58/;
		push @problems, "looks for what the 1.0 catalog lacks, without saying to update: $r->{msg}"
		  if ($r->{text} =~ $mismatch_re || $r->{msg} =~ $undefined_re)
		  && $r->{text} !~ /ALTER EXTENSION dbops UPDATE/;
		push @problems, "a realistic call failed: $r->{state}: $r->{msg}"
		  if $c->{ok} && $r->{level} eq 'ERROR' && !$allow{ $r->{state} };
		push @problems, "wanted success or an error saying what to do ($c->{clear}), got $r->{state}: $r->{msg}"
		  . ($r->{hint} ? " (HINT: $r->{hint})" : '')
		  if $c->{clear} && $r->{level} eq 'ERROR' && $r->{text} !~ $c->{clear};
	}
	push @problems, "printed '$out', not '$c->{want}'"
	  if defined $c->{want} && $ret == 0 && $out ne $c->{want};
	push @problems, 'the server does not accept a new connection' unless alive();
	return @problems;
}

for my $i (0 .. $#calls)
{
	my $c = $calls[$i];
	my @problems = check_call($c);
	ok(!@problems, sprintf('call %d%s: %s', $i + 1,
			$c->{ok} ? ' (realistic)' : $c->{clear} ? ' (clear error wanted)' : '',
			oneline($c->{sql}, 110)))
	  or diag(join("\n", @problems));
}

my @uncalled = grep { !$called{$_} } sort keys %fn_of;
is(join(', ', @uncalled), '', 'every function of the 1.0 catalog was called');

note("what the calls said (" . scalar(@message_order) . " distinct errors and warnings):");
for my $key (@message_order)
{
	my @eg = @{ $messages{$key} };
	note("  $key\n" . join('', map { '        e.g. ' . oneline($_, 160) . "\n" } @eg[ 0 .. ($#eg < 2 ? $#eg : 2) ]));
}

# the session holding the lock is gone (cancel_blockers() above); its
# waiter then ends
eval { $blocker->quit; };
eval { $waiter->quit; };

# ---------------------------------------------------------------------------
# The workers against the 1.0 catalog
# ---------------------------------------------------------------------------
my $log_offset = -s $node->logfile;

$node->safe_psql(
	'postgres', q{
GRANT EXECUTE ON FUNCTION dbops.migration_begin(text, text, text, text[], boolean) TO idler;
GRANT SELECT, INSERT, UPDATE ON dbops.migrations TO idler;
GRANT SELECT, INSERT ON dbops.migration_events TO idler;
GRANT USAGE ON SEQUENCE dbops.migration_events_event_id_seq TO idler;
GRANT CREATE ON SCHEMA public TO idler;
INSERT INTO dbops.reaper_policies (role_name, database_name, state, idle_timeout, note)
VALUES ('idler', 'postgres', 'idle', '1 s', 'idle idler'),
       ('idler', 'postgres', 'idle in transaction', '1 s', 'idler idle in a transaction');
});
my $sweeps = $node->safe_psql('postgres', 'SELECT sweeps FROM dbops.reaper_status()');

# An idle session and a migration left open, of a role a policy reaps.
my $idle = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'idler' ]);
my $idle_pid = $idle->query_safe('SELECT pg_backend_pid()');
my $open = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'idler' ]);
my $open_pid = $open->query_safe('SELECT pg_backend_pid()');
$open->query_safe(q{BEGIN; SELECT dbops.migration_begin('301', 'left open by idler');
	CREATE TABLE mig301 (a int)});
# A migration left open by a superuser (never reaped), failing later.
my $failing = $node->background_psql('postgres', on_error_stop => 0);
$failing->query_safe(q{BEGIN; SELECT dbops.migration_begin('300', 'left open, fails');
	CREATE TABLE mig300 (a int)});

ok( $node->poll_query_until(
		'postgres',
		qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE pid IN ($idle_pid, $open_pid)}),
	'the reaper terminated the idle session and the one idle in its migration');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(DISTINCT state) = 2 FROM dbops.reaper_log
		   WHERE usename = 'idler' AND source = 'worker' AND outcome = 'signalled'}),
	'the reaper logged both into the 1.0 dbops.reaper_log');

$failing->query('SELECT 1/0');
$failing->{stderr} = '';
$failing->query_safe('ROLLBACK');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 1 FROM dbops.migration_events
		   WHERE version = '300' AND event = 'failed' AND sqlstate = '22012'}),
	'the event writer recorded the failure of the migration left open');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM dbops.migrations WHERE version IN ('300', '301');
		  SELECT count(*) FROM dbops.migration_events WHERE version = '301';
		  SELECT count(*) FROM pg_class WHERE relname IN ('mig300', 'mig301')}),
	"0\n0\n0",
	'neither migration is recorded as applied; the terminated one left no event');

# a few more sweeps over the 1.0 tables, with the policies 1.0 let in
ok( $node->poll_query_until(
		'postgres', "SELECT sweeps >= $sweeps + 5 FROM dbops.reaper_status()"),
	'the reaper keeps sweeping');
is($node->safe_psql('postgres', 'SELECT dbops.health_status() IS NOT NULL'), 't',
	'health() works while the workers run');
eval { $idle->quit; };
eval { $open->quit; };
eval { $failing->quit; };

my $log = slurp_file($node->logfile);
my $worker_log = substr($log, $log_offset);
unlike($log, qr/terminated by signal|PANIC|TRAP:/, 'no process crashed');
my @worker_lines = $log =~ /^.*\] (?:dbops reaper|dbops ledger event writer) (?:ERROR|WARNING|FATAL):.*$/mg;
note("the workers' errors and warnings (whole run):\n  " . join("\n  ", @worker_lines))
  if @worker_lines;
my @reaper_errors = grep { /\] dbops reaper (?:ERROR|FATAL):/ } @worker_lines;
is(join("\n", @reaper_errors), '', 'the reaper logged no error against the 1.0 catalog');
my @writer_errors = $worker_log =~ /^.*\] dbops ledger event writer (?:ERROR|FATAL):.*$/mg;
is(join("\n", @writer_errors), '', 'the event writer logged no error while the workers ran');
# 1.0's dbops._migration_record_failure() is open to PUBLIC and records
# what it is given: wanted, arguments the writer cannot insert (a NULL
# user, an address that is not one) refused or completed by the caller,
# never an error of the worker
@writer_errors = grep { /\] dbops ledger event writer (?:ERROR|FATAL):/ } @worker_lines;
is(join("\n", @writer_errors), '', 'the event writer logged no error for any call of the 1.0 functions');

# ---------------------------------------------------------------------------
# ALTER EXTENSION dbops UPDATE
# ---------------------------------------------------------------------------

# Every row of the 1.0 tables, in 1.0's columns.
my @tables = split /\n/, $node->safe_psql('postgres',
	q{SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'dbops'::regnamespace
	    AND c.relkind = 'r' ORDER BY 1});
my %columns = map {
	$_ => $node->safe_psql('postgres',
		qq{SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
		    WHERE a.attrelid = 'dbops.$_'::regclass AND a.attnum > 0 AND NOT a.attisdropped})
} @tables;

sub rows_of
{
	my ($t) = @_;
	return split /\n/, $node->safe_psql('postgres',
		"SELECT to_jsonb(t)::text FROM (SELECT $columns{$_[0]} FROM dbops.$t) t ORDER BY 1");
}
my %before = map { $_ => [ rows_of($_) ] } @tables;

# A migration opened under 1.0 is still open when the update runs.
my $spanning = $node->background_psql('postgres', on_error_stop => 0);
$spanning->query_safe(q{BEGIN; SELECT dbops.migration_begin('310', 'spans the update');
	CREATE TABLE mig310 (a int)});
my $updater = $node->background_psql('postgres', on_error_stop => 0);
$updater->{stdin} .= "ALTER EXTENSION dbops UPDATE;\n";
$updater->{run}->pump_nb();
# the update may wait for the open migration (it rebuilds an index of
# dbops.migrations)
$node->poll_query_until(
	'postgres', q{
	SELECT EXISTS (SELECT 1 FROM pg_stat_activity
	                WHERE query LIKE 'ALTER EXTENSION dbops UPDATE%' AND wait_event_type = 'Lock')
	    OR (SELECT extversion FROM pg_extension WHERE extname = 'dbops') <> '1.0'})
  or die 'the update neither waits nor ends';
$spanning->query_safe('CREATE TABLE mig310b (a int); COMMIT');
ok( $node->poll_query_until(
		'postgres',
		qq{SELECT extversion = '$current' FROM pg_extension WHERE extname = 'dbops'}),
	"ALTER EXTENSION dbops UPDATE brought the catalog to $current");
$updater->quit;
$spanning->quit;
unlike($updater->{stderr}, qr/ERROR|FATAL/, 'the update raised no error');

for my $t (@tables)
{
	my %after = map { $_ => 1 } rows_of($t);
	my @lost = grep { !$after{$_} } @{ $before{$t} };
	is(join("\n", @lost), '', "dbops.$t: the " . scalar(@{ $before{$t} }) . ' rows written under 1.0 are all still there');
}
is( $node->safe_psql(
		'postgres',
		q{SELECT status, finished_at IS NOT NULL FROM dbops.migrations WHERE version = '310';
		  SELECT string_agg(object_identity, ',' ORDER BY object_id) FROM dbops.migration_objects
		   WHERE version = '310'}),
	"applied|t\npublic.mig310,public.mig310b",
	'the migration opened under 1.0 was recorded when it committed after the update');

# What the current version does with the data of 1.0.
is($node->safe_psql('postgres', 'SELECT count(*) FROM dbops.health()'), $nchecks, 'health() works after the update');
is( $node->safe_psql('postgres',
		q{SELECT string_agg(check_name || ':' || warning || '/' || critical, ' ' ORDER BY check_name)
		    FROM dbops.health() WHERE check_name IN ('long_transaction', 'xmin_horizon', 'disk_space', 'slow_queries')}),
	'disk_space:20/10 long_transaction:600/3600 slow_queries:500/5000 xmin_horizon:10000000/100000000',
	'the update gives the checks new in 1.1 their default thresholds');
is( $node->safe_psql('postgres',
		q{SELECT string_agg(check_name || ':' || warning || '/' || coalesce(critical::text, '-'), ' ' ORDER BY check_name)
		    FROM dbops.health() WHERE check_name IN ('unused_indexes', 'duplicate_indexes',
		                                             'fk_without_index', 'seq_scan_tables')}),
	'duplicate_indexes:1/- fk_without_index:1/- seq_scan_tables:5/- unused_indexes:1024/-',
	'the update gives the index advice checks their default thresholds');
is($node->safe_psql('postgres', 'SELECT count(*) >= 0 FROM dbops.index_advice()'),
	't', 'index_advice() exists after the update');
note("checks not ok after the update:\n  "
	  . $node->safe_psql('postgres',
		q{SELECT string_agg(check_name || ' ' || status || ': ' || left(detail, 200), E'\n  ')
		    FROM dbops.health() WHERE status <> 'ok'}));
is( $node->safe_psql('postgres',
		q{SELECT dbops.migrate('500', 'after the update', 'CREATE TABLE mig500 (a int)')}),
	'applied',
	'migrate() applies a migration after the update');
is( $node->safe_psql('postgres',
		q{SELECT dbops.migrate('500', 'after the update', 'CREATE TABLE mig500 (a int)')}),
	'skipped',
	'and skips it the second time');
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT dbops.migrate('501', 'fails', 'SELECT 1/0')});
like($err, qr/division by zero/, 'a failing migration fails after the update');
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM dbops.migration_events WHERE version = '501' AND event = 'failed'}),
	'1',
	'and the event writer records it');
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(version || ' ' || status, ', ' ORDER BY version)
		    FROM dbops.migration_status() WHERE version IN ('100', '101', '200', '310', '500')}),
	'100 applied, 101 rolled_back, 200 applied, 310 applied, 500 applied',
	'migration_status() shows the versions of both catalogs');

# Versions and descriptions 1.0 recorded that the current version would not
# accept as new ones can still be rolled back and repaired.
is( $node->safe_psql(
		'postgres',
		q{SELECT dbops.migration_rollback(E'bad\nversion');
		  SELECT dbops.migration_repair(repeat('v', 3000));
		  SELECT dbops.migration_pending(repeat('w', 3000));
		  SELECT dbops.migration_rollback('105')}),
	"rolled_back\nrepaired\nf\nrolled_back",
	'the versions 1.0 let in can be rolled back and repaired after the update');

$node->safe_psql('postgres',
	q{INSERT INTO events (created_at, v) SELECT now() - interval '90 days' - i * interval '1 minute', 'old'
	    FROM generate_series(1, 300) i});
($ret, $out, $err) = $node->psql('postgres', q{CALL dbops.purge('events')});
is($ret, 0, 'CALL dbops.purge(relation) works after the update') or diag($err);
is( $node->safe_psql(
		'postgres',
		q{SELECT status, rows_deleted FROM dbops.purge_runs
		   WHERE policy_id = (SELECT policy_id FROM dbops.retention_policies WHERE relation = 'events'::regclass)
		   ORDER BY run_id DESC LIMIT 1}),
	'done|300',
	'it purged the rows past the policy written under 1.0');
my @problems = check_call({ sql => 'CALL dbops.purge()' });
ok(!@problems, 'CALL dbops.purge() over the policies 1.0 let in: no crash, no internal error')
  or diag(join("\n", @problems));
note('CALL dbops.purge() after the update: '
	  . $node->safe_psql('postgres',
		q{SELECT string_agg(relation || ' ' || status || coalesce(' (' || sqlstate || ')', '') || coalesce(': ' || message, ''), E'\n  ' ORDER BY run_id)
		    FROM dbops.purge_runs WHERE run_id > (SELECT max(run_id) - 5 FROM dbops.purge_runs)}));
is($node->safe_psql('postgres', q{SELECT count(*) FROM dbops.jobs}), '3', 'dbops.jobs works after the update');
is( $node->safe_psql('postgres',
		q{SELECT next_run IS NULL FROM dbops.cron_jobs() WHERE job_name = 'odd-schedule';
		  SELECT status FROM dbops.health() WHERE check_name = 'cron_failures'}),
	"t\nok",
	'and lists the job whose schedule dbops cannot read, without a next run');

# The reaper applies a policy written under 1.0 after the update.
my $late = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'idler' ]);
my $late_pid = $late->query_safe('SELECT pg_backend_pid()');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $late_pid"),
	'the reaper applies the 1.0 policy after the update');
eval { $late->quit; };

$log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|TRAP:/, 'no process crashed after the update');

$node->stop;
done_testing();
