# On a streaming standby CALL dbops.purge() refuses with SQLSTATE 25006 and a
# hint; the read-only parts (dry run, preview, health check) work there.  On
# the primary, the purge pauses while a standby's replay lag is too high.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my ($primary, $standby) = dbops_pair('primary', 'standby',
	setup => sub {
		$_[0]->safe_psql('postgres', q{
CREATE TABLE ev (id int PRIMARY KEY, created_at timestamptz NOT NULL);
CREATE INDEX ON ev (created_at);
INSERT INTO ev SELECT i, now() - i * interval '1 day' FROM generate_series(1, 100) i;
SELECT dbops.add_retention_policy('ev', 'created_at', '30 days');
});
	});

my ($stdout, $stderr);
my $rc = $standby->psql('postgres', "\\set VERBOSITY verbose\nCALL dbops.purge()",
	stdout => \$stdout, stderr => \$stderr);
isnt($rc, 0, 'purge fails on the standby');
like($stderr, qr/ERROR:\s+25006: cannot purge on a server in recovery/, 'with SQLSTATE 25006');
like($stderr, qr/HINT:\s+Run it on the primary/, 'and a hint');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM ev'), '100', 'nothing deleted');

is($standby->safe_psql('postgres', 'SELECT rows_to_delete FROM dbops.purge_preview()'),
	'71', 'preview works on the standby');
$rc = $standby->psql('postgres', 'CALL dbops.purge(dry_run => true)',
	stdout => \$stdout, stderr => \$stderr);
is($rc, 0, 'dry run works on the standby');
like($stderr, qr/71 rows older than .* would be deleted/, 'dry run reports the rows');
is( $standby->safe_psql('postgres',
		"SELECT status || ': ' || detail FROM dbops.health() WHERE check_name = 'retention'"),
	'warning: public.ev: behind: rows older than keep + slack',
	'retention health check runs on the standby and sees the policy behind');

# the primary purges, the standby follows
$primary->safe_psql('postgres', 'CALL dbops.purge()');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM ev'), '29', 'purge replicated');
is($standby->safe_psql('postgres', 'SELECT status FROM dbops.purge_runs'), 'done',
	'run recorded and replicated');

# lag guard: a standby that applies WAL 2 s late; the purge waits while its
# replay lag exceeds dbops.purge_max_replica_lag, and stops at max_run_time
# (from the base backup the standby started from)
my $delayed = dbops_standby($primary, 'delayed',
	conf => "recovery_min_apply_delay = '2s'", catch_up => 0);
$primary->safe_psql('postgres', q{
INSERT INTO ev SELECT i, now() - i * interval '1 day' FROM generate_series(1000, 1100) i;
SELECT dbops.alter_retention_policy('ev', max_run_time => '3 s');
});
# keep WAL coming (a commit every 0.1 s for 12 s), so the lag stays measured
$primary->safe_psql('postgres', 'CREATE TABLE ticks (t timestamptz)');
my ($tout, $terr) = ('', '');
my $ticker = IPC::Run::start(
	[ 'psql', '-X', '-d', $primary->connstr('postgres'), '-c',
		'DO $$ BEGIN FOR i IN 1 .. 120 LOOP INSERT INTO ticks VALUES (now()); COMMIT; PERFORM pg_sleep(0.1); END LOOP; END $$' ],
	'>', \$tout, '2>', \$terr);
ok( $primary->poll_query_until('postgres',
		"SELECT replay_lag > interval '1 s' FROM pg_stat_replication WHERE application_name = 'delayed'"),
	'delayed standby shows replay lag');
$primary->safe_psql('postgres', q{
SET dbops.purge_max_replica_lag = '500ms';
CALL dbops.purge();
});
my ($paused, $deleted, $status, $message) = split /\|/, $primary->safe_psql('postgres',
	'SELECT paused_ms, rows_deleted, status, message FROM dbops.purge_runs ORDER BY run_id DESC LIMIT 1');
cmp_ok($paused, '>=', 2500, 'purge paused while the standby lagged');
is($deleted, '0', 'no batch ran while the standby lagged');
is($status, 'partial', 'run stopped at max_run_time');
like($message, qr/replay lag .* exceeded dbops.purge_max_replica_lag/, 'message names the lag guard');

$ticker->finish;

# with the guard off the same purge goes through
$primary->safe_psql('postgres', q{
SET dbops.purge_max_replica_lag = 0;
CALL dbops.purge();
});
is( $primary->safe_psql('postgres',
		'SELECT status || rows_deleted FROM dbops.purge_runs ORDER BY run_id DESC LIMIT 1'),
	'done101', 'guard off: purge done');

$delayed->stop;
$standby->stop;
$primary->stop;
done_testing();
