# dbops.migrate() under dbops.migration_lock_timeout: a migration whose
# ALTER TABLE waits for a long transaction gives up its lock request after
# the timeout, so the queries queued behind it run; it is tried again after
# a pause, each retry recorded as an event, and applies once the
# transaction ends: exactly once, all of its statements together.  When the
# retries run out it fails with 55P03 and nothing of it stays.  The
# transaction of dbops.migration_begin() gets the same lock_timeout.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('ledger_lock_timeout', preload => '');
$node->safe_psql('postgres', q{
CREATE TABLE busy (id int);
INSERT INTO busy SELECT generate_series(1, 100);
});

sub events
{
	my ($version, $event) = @_;
	return $node->safe_psql('postgres', qq{
SELECT count(*) FROM dbops.migration_events WHERE version = '$version' AND event = '$event'});
}

# a long transaction that has read the table (ACCESS SHARE)
my $holder = $node->background_psql('postgres', on_error_stop => 0);
$holder->query_safe('BEGIN; SELECT count(*) FROM busy;');

my $runner = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $runner->query_safe('SELECT pg_backend_pid()');
$runner->query_safe(q{
SET dbops.migration_lock_timeout = 400;
SET dbops.migration_retry_delay = 300;
SET dbops.migration_lock_retries = 20;
});
$runner->query_until(qr/started/, q{
\echo started
SELECT dbops.migrate('0001', 'two statements, one retried',
    'CREATE TABLE busy_made (); ALTER TABLE busy ADD COLUMN note text');
});
ok( $node->poll_query_until('postgres', qq{
SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $pid}),
	'the migration waits for the lock the long transaction holds');

# a query that comes after the migration's request is queued behind it,
# but only until the migration's lock_timeout: it completes while the long
# transaction is still open
my $reader = $node->background_psql('postgres', on_error_stop => 0);
is($reader->query_safe('SELECT count(*) FROM busy'), '100',
	'a read queued behind the waiting migration completes');
is($node->safe_psql('postgres', q{SELECT count(*) FROM dbops.migrations WHERE version = '0001'}),
	'0', 'while the long transaction is open, nothing is applied');
ok( $node->poll_query_until('postgres', q{
SELECT count(*) >= 1 FROM dbops.migration_events
WHERE version = '0001' AND event = 'retry' AND sqlstate = '55P03'}),
	'each retry is recorded as an event with 55P03');
is($node->safe_psql('postgres', q{SELECT to_regclass('busy_made') IS NULL}), 't',
	'a rolled-back attempt leaves nothing behind');

# the long transaction ends: the next retry applies
$holder->query_safe('COMMIT');
ok( $node->poll_query_until('postgres', q{
SELECT count(*) = 1 FROM dbops.migrations WHERE version = '0001'}),
	'the migration applies once the lock is free');
$runner->query('SELECT 1');
like($runner->{stderr}, qr/NOTICE:  migration 0001: canceling statement due to lock timeout/,
	'each retry says so in a NOTICE');
like($runner->{stderr}, qr/DETAIL:  Attempt 1 of 21 rolled back; the next one in \d+ ms\./,
	'with its attempt number and pause');
is($node->safe_psql('postgres', q{
SELECT to_regclass('busy_made') IS NOT NULL,
       EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'busy'::regclass AND attname = 'note')}),
	't|t', 'both statements of the migration took effect, once');
is(events('0001', 'apply'), '1', 'one apply event');
is(events('0001', 'failed'), '0', 'no failed attempt');
my $retries = events('0001', 'retry');
ok($retries >= 1, "at least one retry recorded ($retries)");

# retries exhausted: the last lock timeout is the migration's error
$holder->query_safe('BEGIN; SELECT count(*) FROM busy;');
my ($out, $err) = ('', '');
$node->psql('postgres', q{
SET dbops.migration_lock_timeout = 100;
SET dbops.migration_retry_delay = 50;
SET dbops.migration_lock_retries = 2;
SELECT dbops.migrate('0002', 'gives up', 'ALTER TABLE busy ADD COLUMN later int');
}, stdout => \$out, stderr => \$err, on_error_stop => 0);
like($err, qr/ERROR:  canceling statement due to lock timeout/, 'after the last retry: the lock timeout error');
is(() = $err =~ /NOTICE:  migration 0002:/g, 2, 'two retries before it');
ok( $node->poll_query_until('postgres', q{
SELECT count(*) = 1 FROM dbops.migration_events
WHERE version = '0002' AND event = 'failed' AND sqlstate = '55P03'}),
	'the last attempt is recorded as failed');
is(events('0002', 'retry'), '2', 'the two retries recorded');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM dbops.migrations WHERE version = '0002'}), '0', 'nothing applied');

# a session's own lower lock_timeout is kept; 0 turns dbops' off
$node->psql('postgres', q{
SET lock_timeout = 50;
SET dbops.migration_lock_retries = 0;
SELECT dbops.migrate('0003', 'session timeout', 'SELECT pg_catalog.current_setting(''lock_timeout'')');
}, stdout => \$out, stderr => \$err, on_error_stop => 0);
is($node->safe_psql('postgres', q{
SELECT count(*) FROM dbops.migrations WHERE version = '0003'}), '1', 'a body that needs no lock applies');
($out, $err) = ('', '');
$node->psql('postgres', q{
SET lock_timeout = 50;
SET dbops.migration_lock_retries = 0;
SELECT dbops.migrate('0004', 'lower session timeout', 'ALTER TABLE busy ADD COLUMN lower int');
}, stdout => \$out, stderr => \$err, on_error_stop => 0, timeout => 60);
like($err, qr/ERROR:  canceling statement due to lock timeout/, "the session's 50 ms lock_timeout applies");

# migration_begin(): its transaction gets the lock_timeout; the session's
# setting comes back after it
($out, $err) = ('', '');
$node->psql('postgres', q{
SET dbops.migration_lock_timeout = 150;
BEGIN;
SELECT dbops.migration_begin('0005', 'psql style');
SHOW lock_timeout;
ALTER TABLE busy ADD COLUMN psql int;
ROLLBACK;
SHOW lock_timeout;
}, stdout => \$out, stderr => \$err, on_error_stop => 0, timeout => 60);
like($out, qr/^150ms$/m, 'migration_begin() sets lock_timeout for its transaction');
like($out, qr/^0$/m, 'and the session has its own back after it');
like($err, qr/ERROR:  canceling statement due to lock timeout/, 'its ALTER TABLE gives up after it');

# with 0, no lock_timeout: the migration waits (until cancelled here)
$runner->query('SET dbops.migration_lock_timeout = 0;');
$runner->query_until(qr/started/, q{
\echo started
SELECT dbops.migrate('0006', 'waits', 'ALTER TABLE busy ADD COLUMN waits int');
});
ok( $node->poll_query_until('postgres', qq{
SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $pid}),
	'with dbops.migration_lock_timeout = 0 the migration waits');
sleep(1);
is($node->safe_psql('postgres', qq{
SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $pid}), 't',
	'and keeps waiting');
is(events('0006', 'retry'), '0', 'with no retry');
$holder->query_safe('COMMIT');
ok( $node->poll_query_until('postgres', q{
SELECT count(*) = 1 FROM dbops.migrations WHERE version = '0006'}),
	'it applies when the transaction ends');

$reader->quit;
$runner->quit;
$holder->quit;
$node->stop;
done_testing();
