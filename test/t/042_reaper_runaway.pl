# The dbops reaper and runaway sessions: statements that run too long and
# transactions open too long, ended by policy (worker) or on demand
# (dbops.reap_runaway()).  What must be spared is: the sessions of exempt
# applications, pg_dump, maintenance (CREATE INDEX CONCURRENTLY), a
# statement that ended or was replaced between the sweep and the signal, a
# transaction that ended.  A parallel query is cancelled through its leader.
# Timing is never asserted: "cancelled" is a poll for the event and the
# session's next answer; "spared" is checked after a session started later
# under the same timeout has been cancelled, which proves a sweep saw both.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('runaway',
	conf => [
		'dbops.reaper_naptime = 1', 'max_worker_processes = 16',
		'max_parallel_workers = 4', 'max_parallel_workers_per_gather = 2' ]);
$node->safe_psql(
	'postgres', q{
CREATE ROLE app LOGIN;
CREATE ROLE report LOGIN;
CREATE ROLE ops LOGIN IN ROLE pg_signal_backend;
CREATE ROLE peer LOGIN;
GRANT EXECUTE ON FUNCTION dbops.reap_runaway(interval, interval, boolean, text, text) TO peer;
CREATE TABLE big AS SELECT i FROM generate_series(1, 200000) i;
GRANT SELECT ON big TO PUBLIC;
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t SELECT i, 0 FROM generate_series(1, 100) i;
ALTER TABLE t OWNER TO app;
GRANT CREATE ON SCHEMA public TO app;
ANALYZE big;
-- running statements of app: cancelled after 2 s; of report: terminated
INSERT INTO dbops.reaper_policies (role_name, query_timeout, action)
VALUES ('app', '2 s', 'cancel'), ('report', '2 s', 'terminate');
-- the nightly report is exempt
INSERT INTO dbops.reaper_policies (application_name, action) VALUES ('nightly%', 'exempt');
});

sub session
{
	my (%o) = @_;
	my $s = $node->background_psql('postgres',
		extra_params => [ '-U', $o{user} // 'app' ], on_error_stop => 0);
	$s->query_safe("SET application_name = '$o{app}'") if defined $o{app};
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	return [ $s, $pid ];
}

# start a statement in the background; it runs until it ends or is ended
sub start
{
	my ($s, $sql) = @_;
	$s->[0]->query_until(qr/started/, "\\echo started\n$sql\n");
	$node->poll_query_until('postgres',
		"SELECT state = 'active' FROM pg_stat_activity WHERE pid = $s->[1]")
	  or die "statement of $s->[1] did not start";
}

# end a session's psql (which may have lost its session already)
sub done
{
	eval { $_->[0]->quit } for @_;
}

sub alive
{
	my ($pid) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") eq '1';
}

sub events
{
	my ($pid, $cols) = @_;
	return $node->safe_psql('postgres',
		"SELECT " . ($cols // "kind || ' ' || action || ' ' || outcome")
		  . " FROM dbops.reaper_events() WHERE pid = $pid ORDER BY seq");
}

sub wait_event
{
	my ($pid, $outcome) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM dbops.reaper_events() WHERE pid = $pid AND outcome = '$outcome'");
}

sub set_conf { reaper_set_conf($node, @_) }

# a statement of app started after the sessions under test: once it has
# been cancelled, a sweep saw each of them past the same timeout
sub marker
{
	my $m = session();
	start($m, 'SELECT pg_sleep(600);');
	ok(wait_event($m->[1], 'signalled'), "marker statement of $m->[1] cancelled");
	done($m);
}

ok( $node->poll_query_until(
		'postgres', 'SELECT worker_pid IS NOT NULL FROM dbops.reaper_status()'),
	'reaper worker is running');

# --- a long query is cancelled, its session lives on -----------------------
my $a = session();
start($a, 'SELECT pg_sleep(600);');
ok(wait_event($a->[1], 'signalled'), 'long query cancelled by its policy');
is(scalar $a->[0]->query('SELECT 42'), '42', 'its session lives on and answers');
is( events($a->[1],
		"kind || ' ' || action || ' ' || state || ' ' || (running_for >= interval '2 s') || ' ' || (idle_for IS NULL) || ' ' || query"),
	'query cancel active true true SELECT pg_sleep(600);',
	'the event: kind, action, state, how long it ran, the query');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM dbops.reaper_log WHERE pid = $a->[1] AND kind = 'query' AND query = 'SELECT pg_sleep(600);'"),
	'and it is in dbops.reaper_log');
ok( $node->log_contains(qr/dbops reaper: cancelled session $a->[1] .*statement running for/),
	'and in the server log');
done($a);

# --- terminate mode ----------------------------------------------------------
my $b = session(user => 'report');
start($b, 'SELECT pg_sleep(600);');
ok(wait_backend_gone($node, $b->[1]), 'terminate policy ends the session');
is(events($b->[1]), 'query terminate signalled', 'recorded as a terminate');
done($b);

# --- spared: exempt application, pg_dump, a superuser without a policy -------
$node->safe_psql('postgres',
	q{INSERT INTO dbops.reaper_policies (query_timeout) VALUES ('2 s')});
my $c = session(app => 'nightly-sales');
my $d = session(user => 'report', app => 'pg_dump');
my $su = session(user => 'postgres');
start($c, 'SELECT pg_sleep(600);');
start($d, 'SELECT pg_sleep(600);');
start($su, 'SELECT pg_sleep(600);');
marker();
ok(alive($c->[1]) && events($c->[1]) eq '', 'query of an exempt application spared');
ok(alive($d->[1]) && events($d->[1]) eq '',
	'pg_dump spared (dbops.reaper_exempt_applications)');
ok(alive($su->[1]) && events($su->[1]) eq '',
	'a superuser\'s query spared when no policy names its role');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($_->[1])") for ($c, $d, $su);
done($c, $d, $su);
$node->safe_psql('postgres',
	q{DELETE FROM dbops.reaper_policies WHERE role_name IS NULL AND application_name IS NULL});

# --- CREATE INDEX CONCURRENTLY is maintenance: spared ------------------------
# an open snapshot holds the build in its wait for old snapshots (progress
# reported as CREATE INDEX CONCURRENTLY) past the timeout
my $holder = session(user => 'postgres');
$holder->[0]->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t');
my $cic = session();
start($cic, 'CREATE INDEX CONCURRENTLY t_v_idx ON t (v);');
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_progress_create_index WHERE pid = $cic->[1]")
  or die 'no CREATE INDEX progress';
marker();
ok(alive($cic->[1]) && events($cic->[1]) eq '',
	'CREATE INDEX CONCURRENTLY spared (dbops.reaper_exempt_commands)');
# without the exemption it is a statement like any other
set_conf(reaper_exempt_commands => 'vacuum, analyze');
ok(wait_event($cic->[1], 'signalled'),
	'with create index concurrently taken out of dbops.reaper_exempt_commands it is cancelled');
set_conf(reaper_exempt_commands => 'vacuum, vacuum full, analyze, cluster, create index concurrently, reindex concurrently');
$holder->[0]->query_safe('COMMIT');
done($holder);
done($cic);
$node->safe_psql('postgres', 'DROP INDEX IF EXISTS t_v_idx');

# --- a parallel query is cancelled through its leader ------------------------
my $p = session();
$p->[0]->query_safe(
	'SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; '
	  . 'SET max_parallel_workers_per_gather = 2');
start($p, 'SELECT count(*) FROM big a, big b WHERE a.i + b.i = -1;');
$node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE leader_pid = $p->[1] AND pid <> $p->[1]")
  or die 'the query runs without parallel workers';
my $workers = $node->safe_psql('postgres',
	"SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE leader_pid = $p->[1] AND pid <> $p->[1]");
ok(wait_event($p->[1], 'signalled'), 'parallel query cancelled');
is(scalar $p->[0]->query('SELECT 42'), '42', 'its leader lives on');
isnt($workers, '', "it ran with parallel workers ($workers)");
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM dbops.reaper_events() WHERE pid IN ($workers)"),
	'0', 'the workers themselves were never signalled');
done($p);

# --- re-check: a statement that ended, one replaced by a new one -------------
# The worker pauses between its sweep and its re-check (testing aid); in
# that pause one statement ends and the session stays idle, another ends
# and its session starts the next.
# The policy's timeout is 2 s, each first statement runs 3.5 s and the pause
# is 4 s: a sweep (every second) sees it due, the re-check comes after it
# ended.
set_conf(reaper_recheck_delay => '4s');
my $e = session();
start($e, 'SELECT pg_sleep(3.5);');
ok(wait_event($e->[1], 'spared: statement ended'),
	'a statement that ended before the signal: spared');
my $f = session();
start($f, "SELECT pg_sleep(3.5);\nSELECT pg_sleep(600);");
ok(wait_event($f->[1], 'spared: statement ended'),
	'a statement replaced by a new one before the signal: spared');
ok(wait_event($f->[1], 'signalled'), 'and the new statement, once past the timeout, is cancelled');
ok(alive($e->[1]), 'the session whose statement ended lives on');
is(events($e->[1]), 'query cancel spared: statement ended', 'and was not signalled');
set_conf(reaper_recheck_delay => '0');
done($e, $f);

# --- open transactions: terminated, whatever their state --------------------
# The transaction runs a short statement every 0.2 s: never a long query,
# never idle in transaction for long, but open longer than the policy allows.
$node->safe_psql('postgres',
	q{INSERT INTO dbops.reaper_policies (role_name, transaction_timeout) VALUES ('app', '3 s')});
my $g = session();
$g->[0]->query_safe('BEGIN; SELECT 1');
for (1 .. 100)
{
	last unless alive($g->[1]);
	# the last of them fails: the session is gone
	last unless eval { $g->[0]->query('SELECT pg_sleep(0.2)'); 1 };
	select(undef, undef, undef, 0.05);
}
ok(!alive($g->[1]), 'a transaction open too long is terminated');
like(events($g->[1], "kind || ' ' || action || ' ' || outcome || ' ' || (running_for >= interval '3 s')"),
	qr/^transaction terminate signalled true$/, 'recorded as a transaction, with its age');
cmp_ok($node->safe_psql('postgres', 'SELECT reaped_transactions FROM dbops.reaper_status()'),
	'>=', 1, 'reaper_status() counts it');
cmp_ok($node->safe_psql('postgres', 'SELECT reaped_queries FROM dbops.reaper_status()'),
	'>=', 3, 'and the cancelled queries');

# a transaction that ends between the sweep and the signal is spared: a
# sweep sees it due between 3 and 4 s, re-checks 6 s later; it commits at 5 s
set_conf(reaper_recheck_delay => '6s');
my $h = session();
$h->[0]->query_safe('BEGIN; SELECT 1');
$node->poll_query_until('postgres',
	"SELECT now() - xact_start > interval '5 s' FROM pg_stat_activity WHERE pid = $h->[1]");
$h->[0]->query_safe('COMMIT');
ok(wait_event($h->[1], 'spared: transaction ended'),
	'a transaction that ended before the signal: spared');
ok(alive($h->[1]), 'its session lives on');
set_conf(reaper_recheck_delay => '0');
done($h);
$node->safe_psql('postgres',
	q{DELETE FROM dbops.reaper_policies WHERE transaction_timeout IS NOT NULL});

# --- dbops.reap_runaway() on demand ----------------------------------------
$node->safe_psql('postgres', 'DELETE FROM dbops.reaper_policies');
my $i = session(user => 'report', app => 'adhoc');
start($i, 'SELECT pg_sleep(600) /* adhoc report */;');
my $j = session(user => 'peer');
$j->[0]->query_safe('BEGIN; SELECT 1');
sleep 2;
my $x = $node->safe_psql('postgres',
	"SELECT pid, kind, action FROM dbops.reap_runaway('1 s', '1 s') WHERE pid IN ($i->[1], $j->[1]) ORDER BY pid",
	extra_params => [ '-U', 'ops' ]);
is( $x,
	join("\n",
		sort { (split /\|/, $a)[0] <=> (split /\|/, $b)[0] }
		  ("$i->[1]|query|dry run: cancel", "$j->[1]|transaction|skipped: idle in transaction")),
	'dry run by default: the long query would be cancelled, the idle transaction cannot be');
ok(alive($i->[1]) && events($i->[1]) eq '', 'a dry run signals and records nothing');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM dbops.reap_runaway('1 s', query_pattern => 'nothing like it')",
		extra_params => [ '-U', 'ops' ]),
	'0', 'query_pattern filters by the query text');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM dbops.reap_runaway('1 s', dry_run => false) WHERE pid = $i->[1]",
		extra_params => [ '-U', 'peer' ]),
	'0', 'a role without pg_signal_backend does not see another role\'s query');
is( $node->safe_psql('postgres',
		"SELECT action FROM dbops.reap_runaway('1 s', dry_run => false, query_pattern => '(?i)ADHOC') WHERE pid = $i->[1]",
		extra_params => [ '-U', 'ops' ]),
	'cancel', 'pg_signal_backend member cancels it, selected by query_pattern');
ok(wait_event($i->[1], 'signalled'), 'recorded as a reap_runaway event');
is(events($i->[1], 'source'), 'reap_runaway', 'with its source');
is(scalar $i->[0]->query('SELECT 42'), '42', 'the cancelled session lives on');
is( $node->safe_psql('postgres',
		"SELECT action FROM dbops.reap_runaway(transaction_for => '1 s', dry_run => false, action => 'terminate') WHERE pid = $j->[1]",
		extra_params => [ '-U', 'peer' ]),
	'terminate', 'a role may end its own role\'s transaction');
ok(wait_backend_gone($node, $j->[1]), 'the idle transaction is gone');
done($i, $j);

# --- the GUC defaults: off by default, then on by reload -------------------
my $k = session(user => 'peer');
start($k, 'SELECT pg_sleep(600);');
my $sweeps = $node->safe_psql('postgres', 'SELECT sweeps FROM dbops.reaper_status()');
$node->poll_query_until('postgres', "SELECT sweeps > $sweeps + 3 FROM dbops.reaper_status()");
ok(alive($k->[1]) && events($k->[1]) eq '', 'no query timeout by default');
# a worker dry run records the match once and signals nothing
set_conf(reaper_query_timeout => '1s', reaper_dry_run => 'on');
ok(wait_event($k->[1], 'dry run'), 'dry run records the long query');
$sweeps = $node->safe_psql('postgres', 'SELECT sweeps FROM dbops.reaper_status()');
$node->poll_query_until('postgres', "SELECT sweeps > $sweeps + 2 FROM dbops.reaper_status()");
is(events($k->[1]), 'query cancel dry run', 'once per statement, and nothing is signalled');
ok( $node->safe_psql('postgres', "SELECT state FROM pg_stat_activity WHERE pid = $k->[1]") eq 'active',
	'the query still runs');
set_conf(reaper_dry_run => 'off');
ok(wait_event($k->[1], 'signalled'), 'dbops.reaper_query_timeout cancels it');
is(events($k->[1], 'policy_id IS NULL'), "t\nt", 'no policy decided, in the dry run or the cancel');
done($k);

is( $node->safe_psql('postgres',
		"SELECT status FROM dbops.health() WHERE check_name = 'reaper'"),
	'ok', 'health check reaper is ok');
unlike(slurp_file($node->logfile), qr/dbops reaper (?:ERROR|FATAL|PANIC)|terminated by signal/,
	'no error and no crash of the worker');

$node->stop;
done_testing();
