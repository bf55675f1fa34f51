# The dbops reaper on a streaming hot standby: the worker runs there, reaps
# the standby's idle sessions, cancels its long queries and keeps its events
# in memory (and the server log): nothing is written to dbops.reaper_log,
# which is read-only there.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($primary, $standby) = dbops_pair('primary', 'standby',
	conf => 'dbops.reaper_naptime = 1',
	setup => sub {
		my ($node) = @_;
		$node->safe_psql('postgres',
			'CREATE ROLE app LOGIN; CREATE ROLE mon LOGIN IN ROLE pg_monitor;');
		$node->safe_psql('postgres',
			q{INSERT INTO dbops.reaper_policies (application_name, idle_timeout) VALUES ('standby-app', '1s')});
		$node->safe_psql('postgres',
			q{INSERT INTO dbops.reaper_policies (application_name, query_timeout, action)
			  VALUES ('standby-report', '1s', 'cancel')});
		$node->safe_psql('postgres', 'CREATE DATABASE other');
		$node->safe_psql('other', 'CREATE EXTENSION dbops');
	});

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'standby is in recovery');
ok( $standby->poll_query_until(
		'postgres',
		'SELECT worker_pid IS NOT NULL AND sweeps > 0 FROM dbops.reaper_status()'),
	'reaper worker runs and sweeps on the standby');

# the policy replicated from the primary applies to the standby's sessions
my $s = $standby->background_psql('postgres', extra_params => [ '-U', 'app' ]);
$s->query_safe("SET application_name = 'standby-app'");
my $pid = $s->query_safe('SELECT pg_backend_pid()');
ok(wait_backend_gone($standby, $pid),
	'idle standby session reaped by the replicated policy');
$s->quit;

is( $standby->safe_psql(
		'postgres',
		"SELECT source || ' ' || outcome || ' ' || policy_id FROM dbops.reaper_events() WHERE pid = $pid"),
	'worker signalled 1',
	'event kept in the standby\'s memory');
is( $standby->safe_psql(
		'postgres',
		"SELECT outcome FROM dbops.reaper_events() WHERE pid = $pid",
		extra_params => [ '-U', 'mon' ]),
	'signalled',
	'a pg_monitor member reads the events on the standby');
is( $standby->safe_psql(
		'other', "SELECT count(*) FROM dbops.reaper_events() WHERE pid = $pid"),
	'1', 'and from another database');
ok( $standby->wait_for_log(qr/dbops reaper: terminated session $pid /),
	'and in the standby\'s server log');

# the sweeps after the reaping ran fine: no write attempted on the standby
my $sweeps = $standby->safe_psql('postgres', 'SELECT sweeps FROM dbops.reaper_status()');
$standby->poll_query_until('postgres',
	"SELECT sweeps > $sweeps + 1 FROM dbops.reaper_status()");
unlike(slurp_file($standby->logfile),
	qr/cannot execute INSERT in a read-only transaction/,
	'the worker does not try to write dbops.reaper_log on the standby');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM dbops.reaper_log'),
	'0', 'dbops.reaper_log stays empty on the standby');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM dbops.reaper_events()'),
	'0', 'the primary\'s ring is its own');

# a long query on the standby is cancelled by the replicated query policy;
# its session lives on
my $r = $standby->background_psql('postgres',
	extra_params => [ '-U', 'app' ], on_error_stop => 0);
$r->query_safe("SET application_name = 'standby-report'");
my $rpid = $r->query_safe('SELECT pg_backend_pid()');
$r->query_until(qr/sleeping/, "\\echo sleeping\nSELECT pg_sleep(60);\n");
ok( $standby->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM dbops.reaper_events() WHERE pid = $rpid AND kind = 'query' AND outcome = 'signalled'"),
	'long query on the standby cancelled by the worker');
is(scalar $r->query('SELECT 42'), '42', 'its session lives on');
is( $standby->safe_psql(
		'postgres',
		"SELECT action || ' ' || state || ' ' || (running_for >= interval '1 s') || ' ' || query
		 FROM dbops.reaper_events() WHERE pid = $rpid"),
	'cancel active true SELECT pg_sleep(60);',
	'the event names the statement and how long it ran');
$r->quit;

# reap_idle() works on the standby too
my $t = $standby->background_psql('postgres', extra_params => [ '-U', 'app' ]);
my $tpid = $t->query_safe('SELECT pg_backend_pid()');
sleep 1;
is( $standby->safe_psql(
		'postgres',
		"SELECT action FROM dbops.reap_idle('0.5 s', dry_run => false) WHERE pid = $tpid"),
	'terminate',
	'reap_idle() terminates on the standby');
ok(wait_backend_gone($standby, $tpid), 'the session is gone');
$t->quit;

is($standby->safe_psql('postgres',
		"SELECT status FROM dbops.health() WHERE check_name = 'reaper'"),
	'ok', 'health check reaper is ok on the standby');

$standby->stop;
$primary->stop;
done_testing();
