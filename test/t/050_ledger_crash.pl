# A backend killed with SIGKILL in the middle of dbops.migrate() leaves
# neither the schema change nor the ledger row behind (crash recovery).
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('ledger_crash', preload => '', conf => 'restart_after_crash = on');

# A migration whose body creates a table, fills it, then sleeps.
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/, q{
\echo started
SELECT dbops.migrate('0001', 'slow', $$CREATE TABLE crash_t (id int); INSERT INTO crash_t SELECT generate_series(1, 1000); SELECT pg_sleep(300)$$);
});

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE '%dbops.migrate%'"),
	'migration is running its body');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE '%dbops.migrate%'");
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1684172656 AND objid = 1 AND granted AND pid = $pid"),
	'1', 'the migrating backend holds the ledger lock');

my $log_offset = -s $node->logfile;
is(kill('KILL', $pid), 1, "sent SIGKILL to backend $pid");
eval { $bg->quit; };

ok($node->poll_query_until('postgres', 'SELECT 1', '1'), 'server is back after crash recovery');
ok( $node->log_contains(qr/terminated by signal 9: Killed/, $log_offset),
	'postmaster reports the killed backend');
ok($node->log_contains(qr/all server processes terminated; reinitializing/, $log_offset),
	'the server went through crash recovery');

is($node->safe_psql('postgres', "SELECT to_regclass('crash_t') IS NULL"),
	't', 'the table the body created is gone');
is($node->safe_psql('postgres', "SELECT count(*) FROM dbops.migrations"),
	'0', 'no ledger row');
is($node->safe_psql('postgres', "SELECT count(*) FROM dbops.migration_events WHERE event <> 'failed'"),
	'0', 'no apply event');
is($node->safe_psql('postgres', "SELECT count(*) FROM dbops.migration_objects"),
	'0', 'no captured objects');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1684172656"),
	'0', 'the ledger lock is free');

# The same version applies cleanly afterwards, exactly once.
is( $node->safe_psql('postgres',
		"SELECT dbops.migrate('0001', 'slow', \$\$CREATE TABLE crash_t (id int); INSERT INTO crash_t SELECT generate_series(1, 1000)\$\$)"),
	'applied', 'the version applies after recovery');
is($node->safe_psql('postgres', "SELECT count(*) FROM crash_t"), '1000', 'its body ran once');
is($node->safe_psql('postgres', "SELECT status FROM dbops.migrations WHERE version = '0001'"),
	'applied', 'ledger row recorded');

$node->stop;
done_testing();
