# CALL dbops.backfill() against rows another session holds locked: the
# batch waits at most dbops.purge_lock_timeout, retries, then updates the
# rest of its range with SKIP LOCKED and keeps the locked rows' keys in
# dbops.backfill_pending; while they stay locked the run fails with 55P03,
# and once they are free the same CALL updates them: every row exactly
# once.  (The replica-lag guard is the purge's, tested in
# 062_retention_standby.)  On a streaming standby the CALL refuses with 25006 and a hint, and
# dbops.backfill_progress reads there.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my ($primary, $standby) = dbops_pair('primary', 'standby',
	setup => sub {
		$_[0]->safe_psql('postgres', q{
CREATE TABLE bl (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO bl (id) SELECT i FROM generate_series(1, 100) i;
});
	});

# a session holding rows 5 and 55 locked
my ($lin, $lout, $lerr) = ("BEGIN;\nSELECT 'locked', id FROM bl WHERE id IN (5, 55) ORDER BY id FOR UPDATE;\n", '', '');
my $timer = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);
my $locker = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $primary->connstr('postgres') ],
	'<', \$lin, '>', \$lout, '2>', \$lerr, $timer);
$locker->pump until $lout =~ /locked\|55/;

my $set = "SET dbops.purge_lock_timeout = '50ms'; SET dbops.purge_lock_retries = 1; "
  . "SET dbops.backfill_yield = 0; SET dbops.purge_batch_max = 10;\n";
my ($stdout, $stderr);
my $rc = $primary->psql('postgres', $set . "CALL dbops.backfill('bl', 'v = v + 1', batch_size => 10)",
	stdout => \$stdout, stderr => \$stderr);
isnt($rc, 0, 'the CALL fails while rows stay locked');
like($stderr, qr/ERROR:  backfill of public\.bl failed: 2 rows of public\.bl stayed locked by other transactions/,
	'its error says how many rows stayed locked');
like($stderr, qr/HINT:  Committed batches stay updated; CALL dbops\.backfill\(\) again/, 'with a hint');
is($primary->safe_psql('postgres',
		"SELECT status || ' ' || sqlstate || ' ' || rows_updated || ' ' || rows_skipped_locked || ' ' || last_key FROM dbops.backfill_runs"),
	'failed 55P03 98 2 100', 'run recorded as failed, the locked rows counted as skipped');
is($primary->safe_psql('postgres', "SELECT string_agg(key, ',' ORDER BY key::int) FROM dbops.backfill_pending"),
	'5,55', 'the locked rows are kept pending');
is($primary->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE v = 1) || ' ' || string_agg(id::text, ',') FILTER (WHERE v <> 1) FROM bl"),
	'98 5,55', 'every other row updated once');
is($primary->safe_psql('postgres', 'SELECT rows_pending FROM dbops.backfill_progress'), '2',
	'the progress view counts them');

# the lock goes; the same CALL finishes the pending rows only
$lin .= "COMMIT;\n\\q\n";
$locker->finish;
$rc = $primary->psql('postgres', $set . "CALL dbops.backfill('bl', 'v = v + 1', batch_size => 10)",
	stdout => \$stdout, stderr => \$stderr);
is($rc, 0, 'the next CALL succeeds');
like($stderr, qr/resuming backfill run 1 of public\.bl after key 100/, 'it resumes the run');
is($primary->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE v = 1) || ' ' || count(*) FILTER (WHERE v <> 1) FROM bl"),
	'100 0', 'every row updated exactly once');
is($primary->safe_psql('postgres',
		"SELECT status || ' ' || rows_updated || ' ' || (SELECT count(*) FROM dbops.backfill_pending) FROM dbops.backfill_runs"),
	'done 100 0', 'run done, nothing pending');

# on the standby
wait_for_replay($primary, $standby);
$rc = $standby->psql('postgres', "\\set VERBOSITY verbose\nCALL dbops.backfill('bl', 'v = 3')",
	stdout => \$stdout, stderr => \$stderr);
isnt($rc, 0, 'backfill fails on the standby');
like($stderr, qr/ERROR:\s+25006: cannot backfill on a server in recovery/, 'with SQLSTATE 25006');
like($stderr, qr/HINT:\s+Run it on the primary/, 'and a hint');
is($standby->safe_psql('postgres', "SELECT status FROM dbops.backfill_progress WHERE run_id = 1"),
	'done', 'the progress view reads on the standby');

$primary->stop;
$standby->stop;
done_testing();
