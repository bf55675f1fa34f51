# A cancel that arrives while dbops.migrate() waits for its failed attempt to
# be recorded (the background worker that writes it is held up by a lock on
# dbops.migration_events) stops only the wait: the caller gets a WARNING
# that says so and the migration's own error, the session stays usable, and
# the worker still records the attempt once the lock is free.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('ledger_cancel', preload => '');

# holds the events table, so the worker waits for its lock (up to 5 s)
my $holder = $node->background_psql('postgres', on_error_stop => 0);
$holder->query_safe('BEGIN; LOCK TABLE dbops.migration_events IN ACCESS EXCLUSIVE MODE;');

my $runner = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $runner->query_safe('SELECT pg_backend_pid()');
$runner->query_until(qr/started/, q{
\echo started
SELECT dbops.migrate('0001', 'fails', 'SELECT 1/0');
});

ok( $node->poll_query_until('postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'dbops ledger event writer' AND wait_event_type = 'Lock'}),
	'the worker recording the failed attempt waits for the lock');
# (the wait event is BgWorkerShutdown up to 16, BgworkerShutdown from 17 on)
is($node->safe_psql('postgres', "SELECT lower(wait_event) FROM pg_stat_activity WHERE pid = $pid"),
	'bgworkershutdown', 'the caller waits for the worker');

is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't', 'cancel the caller');

# the caller is usable at once, and said what happened
my $out = $runner->query('SELECT 41 + 1 AS usable');
is($out, '42', 'the session is usable right after the cancel');
like($runner->{stderr}, qr/WARNING:  stopped waiting for the failed attempt of migration 0001 to be recorded/,
	'a WARNING says the wait was stopped');
like($runner->{stderr}, qr/ERROR:  division by zero/, 'the error of the migration is raised');
is($runner->query('SELECT count(*) FROM dbops.migrations'), '0', 'no ledger row');

# the lock is released: the worker records the attempt after all
$holder->query_safe('COMMIT');
ok( $node->poll_query_until('postgres', q{
SELECT count(*) = 1 FROM dbops.migration_events
WHERE version = '0001' AND event = 'failed' AND sqlstate = '22012'}),
	'the worker records the failed attempt once');
ok( $node->poll_query_until('postgres', q{
SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'dbops ledger event writer'}),
	'and exits');

# the version applies afterwards
is($runner->query('SELECT dbops.migrate(\'0001\', \'fixed\', \'SELECT 1\')'), 'applied',
	'the same session applies the fixed version');

$runner->quit;
$holder->quit;
$node->stop;
done_testing();
