# The dbops reaper: background worker, policies, dbops.reap_idle(), crash
# restart.  Timing is never asserted: every "reaped" is a poll that the
# session is gone, every "spared" is checked after a later session (opened
# after the spared one) has been reaped, which proves a sweep saw both.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('reaper',
	conf => [ 'dbops.reaper_naptime = 1', 'restart_after_crash = on' ]);
$node->safe_psql(
	'postgres', q(
CREATE ROLE app LOGIN;
CREATE ROLE batch LOGIN;
CREATE ROLE ops LOGIN IN ROLE pg_signal_backend;
CREATE TABLE race_result (action text);
GRANT ALL ON race_result TO PUBLIC;
));

# An idle session: returns [psql, pid].
sub session
{
	my (%o) = @_;
	my $s = $node->background_psql('postgres',
		extra_params => [ '-U', $o{user} // 'app' ]);
	$s->query_safe("SET application_name = '$o{app}'") if defined $o{app};
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	$s->query_safe('BEGIN; SELECT 1') if $o{in_transaction};
	return [ $s, $pid ];
}

sub alive
{
	my ($pid) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") eq '1';
}

sub set_conf { reaper_set_conf($node, @_) }

# reap a fresh marker session: once it is gone, a sweep has seen every session
# opened before it as idle for at least the marker's timeout
sub marker_sweep
{
	my (%o) = @_;
	my $m = session(%o);
	ok(wait_backend_gone($node, $m->[1]), "marker session $m->[1] reaped");
	$m->[0]->quit;
}

ok( $node->poll_query_until(
		'postgres', 'SELECT worker_pid IS NOT NULL FROM dbops.reaper_status()'),
	'reaper worker is running');
my $worker_pid =
  $node->safe_psql('postgres', 'SELECT worker_pid FROM dbops.reaper_status()');

# --- timeout off by default: nothing reaped; a reload turns it on ---------
my $a = session();
$node->poll_query_until('postgres',
	"SELECT sweeps > 2 FROM dbops.reaper_status()");
sleep 2;
ok(alive($a->[1]), 'idle session survives while dbops.reaper_idle_timeout is 0');

set_conf(reaper_idle_timeout => '1s');
ok(wait_backend_gone($node, $a->[1]), 'idle session reaped after the timeout is set by reload');
is( $node->safe_psql('postgres',
		'SELECT worker_pid FROM dbops.reaper_status()'),
	$worker_pid,
	'reload did not restart the worker');
is( $node->safe_psql(
		'postgres',
		"SELECT source || ' ' || state || ' ' || action || ' ' || outcome
		 FROM dbops.reaper_events() WHERE pid = $a->[1]"),
	'worker idle terminate signalled',
	'the reaping is recorded in dbops.reaper_events()');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM dbops.reaper_log WHERE pid = $a->[1] AND outcome = 'signalled'"),
	'and in dbops.reaper_log');
$a->[0]->quit;

# --- dbops.reaper_log keeps dbops.reaper_log_keep worth of events ----------
$node->safe_psql('postgres',
	"INSERT INTO dbops.reaper_log (seq, event_time, source, pid, action, outcome)
	 VALUES (0, now() - interval '8 days', 'worker', 1, 'terminate', 'signalled'),
	        (0, now() - interval '6 days', 'worker', 2, 'terminate', 'signalled')");
set_conf(reaper_log_keep => '7d');
ok( $node->poll_query_until(
		'postgres', 'SELECT NOT EXISTS (SELECT FROM dbops.reaper_log WHERE pid = 1)'),
	'events older than dbops.reaper_log_keep are deleted (a reload prunes at once)');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM dbops.reaper_log WHERE pid IN (2, $a->[1])"),
	'2', 'newer events are kept');

# --- an active session (pg_sleep) is never touched -------------------------
my $b = session();
$b->[0]->query_until(qr/started/, "\\echo started\nSELECT pg_sleep(4);\n");
$node->poll_query_until('postgres',
	"SELECT state = 'active' FROM pg_stat_activity WHERE pid = $b->[1]");
marker_sweep();
marker_sweep();
ok(alive($b->[1]), 'active session running pg_sleep is not reaped');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM dbops.reaper_events() WHERE pid = $b->[1]"),
	'0',
	'no event for the active session');
$b->[0]->quit;

# --- exemptions: role GUC, application GUC, exempt policy, superusers ------
set_conf(reaper_exempt_roles => 'batch');
$node->safe_psql('postgres',
	q{INSERT INTO dbops.reaper_policies (application_name, action) VALUES ('keepme%', 'exempt')});
my $c = session(user => 'batch');
my $d = session(app => 'pg_dump');
my $e = session(app => 'keepme-1');
my $su = session(user => $node->safe_psql('postgres', 'SELECT current_user'));
marker_sweep();
ok(alive($c->[1]), 'session of a role in dbops.reaper_exempt_roles spared');
ok(alive($d->[1]), 'pg_dump session spared by the default dbops.reaper_exempt_applications');
ok(alive($e->[1]), 'session spared by an exempt policy');
ok(alive($su->[1]), 'superuser session spared when no policy names its role');
cmp_ok($node->safe_psql('postgres', 'SELECT sessions_exempt FROM dbops.reaper_status()'),
	'>=', 4, 'reaper_status() counts the exempt sessions');

# a policy that names the superuser explicitly does reap it
my $suname = $node->safe_psql('postgres', 'SELECT current_user');
$node->safe_psql('postgres',
	qq{INSERT INTO dbops.reaper_policies (role_name, idle_timeout) VALUES ('$suname', '1s')});
ok(wait_backend_gone($node, $su->[1]), 'superuser session reaped once a policy names its role');
$node->safe_psql('postgres',
	qq{DELETE FROM dbops.reaper_policies WHERE role_name = '$suname'});
$_->[0]->quit for ($c, $d, $e, $su);

# --- keep_min: a pool keeps its floor, the oldest idle goes first -----------
$node->safe_psql('postgres',
	q{INSERT INTO dbops.reaper_policies (application_name, idle_timeout, keep_min) VALUES ('pool', '1s', 2)});
my @pool = map { session(app => 'pool') } 1 .. 3;
ok(wait_backend_gone($node, $pool[0][1]), 'keep_min: the oldest idle pool session is reaped');
marker_sweep();
marker_sweep();
ok(alive($pool[1][1]) && alive($pool[2][1]), 'keep_min: two pool sessions are left');
cmp_ok($node->safe_psql('postgres', 'SELECT spared FROM dbops.reaper_status()'),
	'>', 0, 'reaper_status() counts sessions spared by keep_min');
$_->[0]->quit for @pool;

# --- idle in transaction has its own timeout ------------------------------
set_conf(reaper_idle_timeout => '1h', reaper_idle_in_transaction_timeout => '1s');
my $h = session();
my $g = session(in_transaction => 1);
ok(wait_backend_gone($node, $g->[1]), 'idle-in-transaction session reaped by its own timeout');
is( $node->safe_psql('postgres',
		"SELECT state FROM dbops.reaper_events() WHERE pid = $g->[1]"),
	'idle in transaction',
	'event records the idle-in-transaction state');
ok(alive($h->[1]), 'plain idle session kept under the 1 h idle timeout');
$_->[0]->quit for ($g, $h);

# --- dry run: recorded once, nobody killed ---------------------------------
set_conf(reaper_idle_timeout => '1s', reaper_idle_in_transaction_timeout => '0',
	reaper_dry_run => 'on');
my $i = session();
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) > 0 FROM dbops.reaper_events() WHERE pid = $i->[1] AND outcome = 'dry run'"),
	'dry run records the match');
my $sweeps = $node->safe_psql('postgres', 'SELECT sweeps FROM dbops.reaper_status()');
$node->poll_query_until('postgres',
	"SELECT sweeps > $sweeps + 2 FROM dbops.reaper_status()");
ok(alive($i->[1]), 'dry run does not kill');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM dbops.reaper_events() WHERE pid = $i->[1]"),
	'1',
	'dry run records a match once per idle spell');
cmp_ok($node->safe_psql('postgres', 'SELECT dry_run_matches FROM dbops.reaper_status()'),
	'>', 0, 'reaper_status() counts dry-run matches');
$i->[0]->quit;

# --- reap_idle(): a session that turns active just before the signal ------
# The worker is out of the way (1 h); reap_idle() pauses between its snapshot
# and its re-check (dbops.reaper_recheck_delay), the victim starts a query in
# that pause, so the re-check must see it active.
set_conf(reaper_idle_timeout => '1h', reaper_dry_run => 'off');
my $j = session();
my $k = $node->background_psql('postgres');
my $kpid = $k->query_safe('SELECT pg_backend_pid()');
sleep 1;
$k->query_until(
	qr/reaping/, qq{\\echo reaping
SET dbops.reaper_recheck_delay = '3s';
INSERT INTO race_result
SELECT coalesce((SELECT action FROM dbops.reap_idle('0.5 s', dry_run => false) WHERE pid = $j->[1]), 'not listed');
});
ok( $node->poll_query_until(
		'postgres',
		"SELECT wait_event = 'Extension' FROM pg_stat_activity WHERE pid = $kpid"),
	'reap_idle() is between its snapshot and its re-check');
$j->[0]->query_until(qr/busy/, "\\echo busy\nSELECT pg_sleep(6);\n");
$node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM race_result');
is($node->safe_psql('postgres', 'SELECT action FROM race_result'),
	'spared: became active',
	'a session that became active before the signal is spared');
ok(alive($j->[1]), 'and it is still connected');
is( $node->safe_psql(
		'postgres',
		"SELECT source || ' ' || outcome FROM dbops.reaper_events() WHERE pid = $j->[1]"),
	'reap_idle spared: became active',
	'the spared session is recorded');
$k->quit;
$j->[0]->quit;

# --- the worker: the same race, caught by its re-check ---------------------
set_conf(reaper_idle_timeout => '1s', reaper_recheck_delay => '3s');
my $j2 = session();
ok( $node->poll_query_until(
		'postgres',
		"SELECT state = 'active' AND wait_event = 'Extension' FROM pg_stat_activity
		 WHERE backend_type = 'dbops reaper'"),
	'worker is between its snapshot and its re-check');
$j2->[0]->query_until(qr/busy/, "\\echo busy\nSELECT pg_sleep(5);\n");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) > 0 FROM dbops.reaper_events() WHERE pid = $j2->[1]"),
	'worker recorded the session');
is( $node->safe_psql(
		'postgres',
		"SELECT source || ' ' || outcome FROM dbops.reaper_events() WHERE pid = $j2->[1]"),
	'worker spared: became active',
	'the worker spares a session that became active before the signal');
ok(alive($j2->[1]), 'and it is still connected');
set_conf(reaper_idle_timeout => '1h', reaper_recheck_delay => '0');
$j2->[0]->quit;

# --- reap_idle() follows pg_signal_backend's rules -------------------------
my $l = session();
my $su2 = session(user => $suname);
sleep 1;
my $seen = $node->safe_psql(
	'postgres',
	"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM dbops.reap_idle('0.5 s')
	 WHERE pid IN ($l->[1], $su2->[1])",
	extra_params => [ '-U', 'ops' ]);
is($seen, $l->[1], 'a pg_signal_backend member sees the app session, not the superuser one');
my $out = $node->safe_psql(
	'postgres',
	"SELECT action FROM dbops.reap_idle('0.5 s', dry_run => false) WHERE pid = $l->[1]",
	extra_params => [ '-U', 'ops' ]);
is($out, 'terminate', 'reap_idle(dry_run => false) terminates');
ok(wait_backend_gone($node, $l->[1]), 'the session is gone');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT * FROM dbops.reap_idle('1 s')", extra_params => [ '-U', 'app' ]);
like($stderr, qr/permission denied/, 'reap_idle() is not open to PUBLIC');
$_->[0]->quit for ($l, $su2);

# --- policies written before the validation trigger (as 1.0 allowed) -------
# An idle_timeout too long to count in microseconds and an application_name
# pattern LIKE refuses: the trigger refuses both now; rows already stored
# must not make every sweep fail.
$node->safe_psql(
	'postgres', q{
ALTER TABLE dbops.reaper_policies DISABLE TRIGGER reaper_policies_validate;
INSERT INTO dbops.reaper_policies (application_name, idle_timeout) VALUES ('legacy\', '1s');
INSERT INTO dbops.reaper_policies (application_name, idle_timeout) VALUES ('forever%', '178000000 years');
ALTER TABLE dbops.reaper_policies ENABLE TRIGGER reaper_policies_validate;
});
set_conf(reaper_idle_timeout => '1s');
my $logpos = -s $node->logfile;
my $forever = session(app => 'forever-1');
my $legacy = session(app => 'legacy\\');
marker_sweep();
ok(alive($forever->[1]), 'a stored policy timeout too long to count never fires');
ok(wait_backend_gone($node, $legacy->[1]),
	'a stored pattern LIKE refuses matches nothing: the session falls back to dbops.reaper_idle_timeout');
is( $node->safe_psql('postgres',
		"SELECT count(*) >= 0 FROM dbops.reap_idle('1 h', dry_run => true)"),
	't', 'reap_idle() reads those policies too');
unlike(slurp_file($node->logfile, $logpos), qr/ERROR/, 'no sweep failed on them');
$node->safe_psql('postgres',
	q{DELETE FROM dbops.reaper_policies WHERE application_name IN ('legacy\', 'forever%')});
$forever->[0]->quit;
$legacy->[0]->quit;
set_conf(reaper_idle_timeout => '1h');

# --- the worker is restarted after SIGKILL (a crash-restart cycle) ---------
$worker_pid =
  $node->safe_psql('postgres', 'SELECT worker_pid FROM dbops.reaper_status()');
kill 'KILL', $worker_pid;
ok( $node->poll_query_until(
		'postgres',
		"SELECT worker_pid IS NOT NULL AND worker_pid <> $worker_pid FROM dbops.reaper_status()"),
	'worker is back after SIGKILL');
set_conf(reaper_idle_timeout => '1s');
my $m = session();
ok(wait_backend_gone($node, $m->[1]), 'the restarted worker reaps');
$m->[0]->quit;

# --- SIGTERM: clean exit, logged, and the postmaster starts it again -------
$worker_pid =
  $node->safe_psql('postgres', 'SELECT worker_pid FROM dbops.reaper_status()');
my $logstart = -s $node->logfile;
kill 'TERM', $worker_pid;
ok( $node->wait_for_log(
		qr/terminating background worker "dbops reaper" due to administrator command/,
		$logstart),
	'SIGTERM stops the worker cleanly');
unlike(slurp_file($node->logfile, $logstart), qr/server process .* was terminated by signal/,
	'no crash-restart after SIGTERM');

# --- without shared_preload_libraries: functions say so --------------------
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->restart;
($ret, $stdout, $stderr) =
  $node->psql('postgres', 'SELECT * FROM dbops.reaper_events()');
like($stderr, qr/HINT:  Add dbops to shared_preload_libraries/,
	'reaper_events() names shared_preload_libraries when dbops is not preloaded');
($ret, $stdout, $stderr) =
  $node->psql('postgres', 'SELECT * FROM dbops.reaper_status()');
like($stderr, qr/shared_preload_libraries/, 'so does reaper_status()');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM dbops.reap_idle('1 h')"),
	'0',
	'reap_idle() works without the worker');
like( $node->safe_psql('postgres',
		"SELECT status || ': ' || detail FROM dbops.health() WHERE check_name = 'reaper'"),
	qr/^warning: .*not in shared_preload_libraries/,
	'health check warns: timeout set but the worker cannot run');

$node->stop;
done_testing();
