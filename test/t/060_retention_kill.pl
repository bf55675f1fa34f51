# A backend killed with SIGKILL in the middle of CALL dbops.purge() leaves
# only whole committed batches behind, its run row tells the truth (then
# "interrupted"; the retention health check says so at once), and the next
# run finishes the job.  A purge stopped by statement_timeout records its
# run as interrupted itself.  dbops is not in
# shared_preload_libraries here: the procedure loads what it needs itself.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = dbops_primary('primary', preload => '',
	conf => [ 'dbops.purge_batch_max = 100', "dbops.purge_batch_target = '60s'",
		'restart_after_crash = on' ]);

$node->safe_psql('postgres', q{
CREATE TABLE ev (id int PRIMARY KEY, created_at timestamptz NOT NULL);
CREATE INDEX ON ev (created_at);
INSERT INTO ev SELECT i, now() - interval '100 days' + i * interval '1 second' FROM generate_series(1, 5000) i;
INSERT INTO ev SELECT i, now() - (i - 5000) * interval '1 minute' FROM generate_series(5001, 5100) i;
-- each batch takes a while, so that the kill lands in the middle of the run
CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(0.1); RETURN NULL; END $$;
CREATE TRIGGER slow AFTER DELETE ON ev FOR EACH STATEMENT EXECUTE FUNCTION slow();
SELECT dbops.add_retention_policy('ev', 'created_at', '30 days', batch_size => 100);
});

# start the purge in the background
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'CALL dbops.purge()' ],
	'>', \$out, '2>', \$err);

ok( $node->poll_query_until('postgres',
		"SELECT batches >= 5 FROM dbops.purge_runs WHERE status = 'running'"),
	'purge is under way');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM dbops.purge_runs WHERE status = 'running'");
kill 'KILL', $pid;
$h->finish;
like($err, qr/server closed the connection|terminat/i, 'purging backend was killed');

# crash recovery restarts every backend; wait for the server to come back
$node->poll_query_until('postgres', 'SELECT 1', '1');

my ($deleted, $status) = split /\|/, $node->safe_psql('postgres',
	"SELECT rows_deleted, status FROM dbops.purge_runs ORDER BY run_id DESC LIMIT 1");
my $old_left = $node->safe_psql('postgres', 'SELECT count(*) FROM ev WHERE id <= 5000');
is($status, 'running', 'run row still says running until the next purge');
cmp_ok($deleted, '>=', 500, 'committed batches survived the crash');
is($deleted % 100, 0, 'only whole batches of 100 rows were deleted');
is($old_left, 5000 - $deleted, 'run row counts exactly the rows that are gone');
is($node->safe_psql('postgres', 'SELECT min(id) FROM ev'), $deleted + 1,
	'the oldest rows went first');
like( $node->safe_psql('postgres',
		"SELECT status || ': ' || detail FROM dbops.health() WHERE check_name = 'retention'"),
	qr/^warning: public\.ev: last run interrupted: backend $pid no longer runs it/,
	'the health check reports the killed run before the next purge marks it');

# the next run marks the dead one and finishes the job
$node->safe_psql('postgres', 'CALL dbops.purge()');
is( $node->safe_psql('postgres',
		"SELECT string_agg(status, ',' ORDER BY run_id) FROM dbops.purge_runs"),
	'interrupted,done', 'dead run marked interrupted, new run done');
like( $node->safe_psql('postgres',
		"SELECT message FROM dbops.purge_runs WHERE status = 'interrupted'"),
	qr/backend $pid ended during the run/, 'interrupted run names its backend');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ev WHERE id <= 5000'),
	'0', 'next run deleted the rest of the old rows');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ev WHERE id > 5000'),
	'100', 'rows younger than the cutoff are all there');
is( $node->safe_psql('postgres',
		"SELECT rows_deleted FROM dbops.purge_runs WHERE status = 'done'"),
	5000 - $deleted, 'second run deleted the remainder');

# the session lock of a purge that errors out is released with it: a
# cancelled purge does not keep the next one out
$node->safe_psql('postgres', q{
INSERT INTO ev SELECT i, now() - interval '100 days' FROM generate_series(1, 1000) i;
});
my ($stdout, $stderr);
$node->psql('postgres',
	"SET statement_timeout = '300ms'; CALL dbops.purge(); SELECT 'after';",
	stdout => \$stdout, stderr => \$stderr, on_error_stop => 0);
like($stderr, qr/canceling statement due to statement timeout/, 'purge cancelled');
like($stderr, qr/HINT:  The run is recorded as interrupted in dbops\.purge_runs/,
	'the cancel says where the run is recorded');
is( $node->safe_psql('postgres',
		"SELECT status || ' ' || sqlstate || ' ' || (finished IS NOT NULL) FROM dbops.purge_runs ORDER BY run_id DESC LIMIT 1"),
	'interrupted 57014 true',
	'the cancelled run is recorded as interrupted at once, not left running');
$node->psql('postgres',
	"SET statement_timeout = '300ms'; CALL dbops.purge(); RESET statement_timeout; "
	  . "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1684172914;",
	stdout => \$stdout, stderr => \$stderr, on_error_stop => 0);
is($stdout, '0', 'no purge lock left behind in the session after a cancel');
$node->safe_psql('postgres', 'CALL dbops.purge()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ev WHERE id <= 5000'),
	'0', 'a later purge in another session is not locked out');

$node->stop;
done_testing();
