# CALL dbops.backfill() of 3 million rows while pgbench (tpcb-like, 2
# clients) runs alongside: its backend is terminated half way, the same
# CALL resumes after the last committed key, and every row is updated
# exactly once.  Then a backend killed with SIGKILL (a crash: the server
# restarts), a cancel (statement_timeout, recorded as cancelled) and a
# second CALL while the run is active (refused) on a smaller table.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = dbops_primary('primary', preload => '',
	conf => [ 'restart_after_crash = on', 'max_wal_size = 4GB',
		'checkpoint_timeout = 30min' ]);

$node->safe_psql('postgres', q{
CREATE TABLE users (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0, new_field text);
INSERT INTO users (id) SELECT i FROM generate_series(1, 3000000) i;
VACUUM ANALYZE users;
});
$node->command_ok([ 'pgbench', '-i', '-s', '2', '-q', $node->connstr('postgres') ],
	'pgbench tables created');

# pgbench, tpcb-like, 2 clients, for the whole test; its output goes to a
# file (a pipe nobody reads would stop it once full)
my $benchlog = $node->basedir . '/pgbench.log';
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', '600', $node->connstr('postgres') ],
	'>', $benchlog, '2>&1');

my $call = q{CALL dbops.backfill('users', 'v = v + 1, new_field = ''default''', batch_size => 5000)};
my ($out, $err) = ('', '');
my $h = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', $call ],
	'>', \$out, '2>', \$err);
ok( $node->poll_query_until('postgres',
		"SELECT last_key::bigint >= 1500000 FROM dbops.backfill_runs WHERE status = 'running'"),
	'backfill half way');
my $pid = $node->safe_psql('postgres', "SELECT pid FROM dbops.backfill_runs WHERE status = 'running'");
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"), 't', 'backfill backend terminated');
$h->finish;
like($err, qr/terminat/i, 'the CALL ended with its backend');

my ($last, $rows, $status) = split /\|/, $node->safe_psql('postgres',
	"SELECT last_key, rows_updated, status FROM dbops.backfill_runs");
is($status, 'running', 'run row still says running: nobody could record its end');
cmp_ok($last, '<', 3000000, 'the run stopped before the end');
is($node->safe_psql('postgres', 'SELECT count(*) FROM users WHERE v = 1'), $rows,
	'rows_updated counts exactly the rows updated: progress committed with each batch');
is($node->safe_psql('postgres', "SELECT count(*) FROM users WHERE v = 1 AND id > $last"), '0',
	'no row after the last committed key was updated');
is($node->safe_psql('postgres', "SELECT count(*) FROM users WHERE v = 0 AND id <= $last"), '0',
	'every row up to it was');
is($node->safe_psql('postgres', 'SELECT active FROM dbops.backfill_progress'), 'f',
	'the progress view sees that no backend runs it');

# the same CALL resumes it, pgbench still running
my ($stdout, $stderr) = ('', '');
my $rc = $node->psql('postgres', $call, stdout => \$stdout, stderr => \$stderr);
is($rc, 0, 'the resumed CALL succeeds');
like($stderr, qr/resuming backfill run 1 of public\.users after key $last \($rows rows updated so far\)/,
	'the same CALL resumes after the last committed key');
$rc = $node->psql('postgres', $call, stdout => \$stdout, stderr => \$stderr);
like($stderr, qr/already done \(run 1, 3000000 rows updated\)/, 'a finished run is not repeated');
is( $node->safe_psql('postgres',
		'SELECT count(*) FILTER (WHERE v = 1) || \'|\' || count(*) FILTER (WHERE v <> 1) || \'|\' || '
		  . "count(*) FILTER (WHERE new_field IS DISTINCT FROM 'default') FROM users"),
	'3000000|0|0', 'every one of the 3 million rows updated exactly once');
is( $node->safe_psql('postgres',
		"SELECT count(*) || ' ' || string_agg(status || ' ' || rows_updated || ' ' || last_key || ' ' || (finished IS NOT NULL), ',') FROM dbops.backfill_runs"),
	'1 done 3000000 3000000 true', 'one run, done, 3 million rows, to the last key');
cmp_ok($node->safe_psql('postgres', 'SELECT batches FROM dbops.backfill_runs'), '>', 10,
	'in many batches');

# (how many transactions pgbench gets through depends on the machine: the
# test needs only that they ran while the backfill did)
cmp_ok( $node->safe_psql('postgres', q{
SELECT count(*) FROM pgbench_history h, dbops.backfill_runs r
WHERE h.mtime BETWEEN r.started AND r.finished}), '>', 0,
	'pgbench ran alongside');
$bench->kill_kill;

# SIGKILL: the server restarts; committed batches and their progress stay
$node->safe_psql('postgres', q{
CREATE TABLE small (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO small (id) SELECT i FROM generate_series(1, 20000) i;
CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$;
CREATE TRIGGER slow AFTER UPDATE ON small FOR EACH STATEMENT EXECUTE FUNCTION slow();
});
($out, $err) = ('', '');
$h = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'),
		'-c', 'SET dbops.purge_batch_max = 200', '-c', "SET dbops.purge_batch_target = '60s'",
		'-c', q{CALL dbops.backfill('small', 'v = v + 1', batch_size => 200)} ],
	'>', \$out, '2>', \$err);
ok( $node->poll_query_until('postgres',
		"SELECT batches >= 10 FROM dbops.backfill_runs WHERE relation = 'small'::regclass AND status = 'running'"),
	'small backfill under way');

# a second CALL of the same run while it is active is refused
my $rc2 = $node->psql('postgres', "CALL dbops.backfill('small', 'v = v + 1')",
	stdout => \$stdout, stderr => \$stderr);
like($stderr, qr/backfill run \d+ of public\.small is running in backend \d+/, 'a second CALL of an active run is refused');

$pid = $node->safe_psql('postgres',
	"SELECT pid FROM dbops.backfill_runs WHERE relation = 'small'::regclass AND status = 'running'");
kill 'KILL', $pid;
$h->finish;
$node->poll_query_until('postgres', 'SELECT 1', '1');
($last, $rows) = split /\|/, $node->safe_psql('postgres',
	"SELECT last_key, rows_updated FROM dbops.backfill_runs WHERE relation = 'small'::regclass");
is($node->safe_psql('postgres', 'SELECT count(*) FROM small WHERE v = 1'), $rows,
	'after the crash, rows_updated counts exactly the rows updated');
is($node->safe_psql('postgres', "SELECT count(*) FROM small WHERE (v = 1) <> (id <= $last)"), '0',
	'after the crash, exactly the rows up to the last key are updated');

# cancelled by statement_timeout: recorded as cancelled at once, resumable
$node->psql('postgres',
	"SET statement_timeout = '500ms'; SET dbops.purge_batch_max = 200; SET dbops.purge_batch_target = '60s'; "
	  . "CALL dbops.backfill('small', 'v = v + 1', batch_size => 200)",
	stdout => \$stdout, stderr => \$stderr, on_error_stop => 0);
like($stderr, qr/resuming backfill run \d+ of public\.small after key $last/, 'the CALL after the crash resumes');
like($stderr, qr/canceling statement due to statement timeout/, 'cancelled by statement_timeout');
like($stderr, qr/HINT:.*recorded as cancelled in dbops\.backfill_runs/, 'the cancel says where the run is recorded');
is($node->safe_psql('postgres',
		"SELECT status || ' ' || sqlstate FROM dbops.backfill_runs WHERE relation = 'small'::regclass"),
	'cancelled 57014', 'run recorded as cancelled');
$node->safe_psql('postgres', "CALL dbops.backfill('small', 'v = v + 1')");
is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE v = 1) || ' ' || count(*) FILTER (WHERE v <> 1) FROM small"),
	'20000 0', 'after a crash, a cancel and two resumes every row updated exactly once');
is($node->safe_psql('postgres',
		"SELECT status || ' ' || rows_updated FROM dbops.backfill_runs WHERE relation = 'small'::regclass"),
	'done 20000', 'the run is done and counted every row once');

$node->stop;
done_testing();
