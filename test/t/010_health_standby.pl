# dbops.health() on a primary and its streaming standby: both reports, the
# standby's own replay delay and the primary's view of the standby's lag;
# also pg_dump/restore of user-changed thresholds.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($primary, $standby) = dbops_pair('primary', 'standby',
	setup => sub {
		$_[0]->safe_psql('postgres', q{
	CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
	CREATE TABLE t (id serial PRIMARY KEY, v int);
	INSERT INTO t (v) SELECT generate_series(1, 100);
	-- grade any replay delay, so that the paused standby shows up
	UPDATE dbops.health_thresholds SET warning = 0.001, critical = 3600
	 WHERE check_name = 'replication_lag';
});
	});
# a transaction replayed by the standby: its replay delay is measured from it
$primary->safe_psql('postgres', 'CREATE TABLE after_start ()');
wait_for_replay($primary, $standby);

sub check
{
	my ($node, $name, $role) = @_;
	my $set = $role ? "SET ROLE $role;" : '';
	my $row = $node->safe_psql('postgres',
		"$set SELECT status || '|' || coalesce(value::text, '') || '|' || coalesce(detail, '')
		   FROM dbops.health() WHERE check_name = '$name'");
	my ($status, $value, $detail) = split /\|/, $row, 3;
	return ($status, $value, $detail);
}

# the primary sees its standby
my ($status, $value, $detail) = check($primary, 'replication_lag');
like($detail, qr/^primary: 1 standby\(s\): standby \(pid \d+, streaming, async\): replay lag/,
	'primary names its standby');

# the standby reports its own replay delay, caught up
($status, $value, $detail) = check($standby, 'replication_lag');
is($value, '0', 'caught-up standby has no replay delay');
like($detail, qr/^standby: caught up \(received [0-9A-F\/]+, replayed [0-9A-F\/]+\)/,
	'standby detail says it is a standby');
like($detail, qr/WAL receiver streaming/, 'standby detail names its WAL receiver');

# every check runs on the standby, none fails, and pg_monitor reads them all
is($standby->safe_psql('postgres',
		"SELECT string_agg(check_name || ': ' || detail, '; ') FROM dbops.health() WHERE status = 'unknown'"),
	'', 'no check is unknown on the standby');
is($standby->safe_psql('postgres',
		"SET ROLE monitor; SELECT string_agg(check_name, ',') FROM dbops.health() WHERE status = 'skipped'"
		  # cron_failures is skipped where pg_cron is not loaded, as here
		  . " AND check_name <> 'cron_failures'"),
	'', 'pg_monitor member: no check skipped on the standby');
($status, $value, $detail) = check($standby, 'sequences', 'monitor');
like($detail, qr/public\.t_id_seq 0\.00% \(100 of 2147483647\)/, 'standby reads sequence values');
is($standby->safe_psql('postgres', "SELECT dbops.health_json()->'server'->>'in_recovery'"),
	'true', 'health_json says the standby is in recovery');
like($standby->safe_psql('postgres', 'SELECT dbops.health_report()', extra_params => [ '-U', 'monitor' ]),
	qr/^dbops health: [A-Z]+ \(.*\) in database postgres at .*\nok \(\d+\): /s,
	'health_report() as text on the standby, as a pg_monitor member');
is($standby->safe_psql('postgres',
		"SELECT count(*) > 0 FROM dbops.relation_sizes(0, include_system => true)",
		extra_params => [ '-U', 'monitor' ]),
	't', 'relation_sizes() on the standby');
is($primary->safe_psql('postgres', "SELECT dbops.health_json()->'server'->>'in_recovery'"),
	'false', 'health_json says the primary is not');

# thresholds cannot be changed on a standby
my ($ret, $stdout, $stderr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nUPDATE dbops.health_thresholds SET warning = 1 WHERE check_name = 'connections'");
like($stderr, qr/25006/, 'changing thresholds on a standby fails with 25006');

# pause replay, write on the primary: the standby lags, and both reports say so
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$standby->poll_query_until('postgres', "SELECT pg_get_wal_replay_pause_state() = 'paused'")
  or die "replay did not pause";
sleep 1;
$primary->safe_psql('postgres', 'INSERT INTO t (v) SELECT generate_series(1, 10000)');
my $target = $primary->lsn('insert');
$standby->poll_query_until('postgres', "SELECT pg_last_wal_receive_lsn() >= '$target'")
  or die "standby did not receive the WAL";
$primary->poll_query_until('postgres',
	"SELECT replay_lsn < '$target' AND flush_lsn >= '$target' FROM pg_stat_replication")
  or die "primary did not see the standby's flush";

($status, $value, $detail) = check($standby, 'replication_lag');
is($status, 'warning', 'paused standby: replay delay graded');
cmp_ok($value, '>', 0, 'paused standby: replay delay above zero');
like($detail, qr/^standby: replay delay [\d.]+s, [1-9]\d* (bytes|kB|MB) received but not replayed/,
	'paused standby: bytes received but not replayed');

($status, $value, $detail) = check($primary, 'replication_lag');
like($detail, qr/standby \(pid \d+, streaming, async\): replay lag [1-9]\d* (bytes|kB|MB)/,
	'primary: the standby lags in bytes');

$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
wait_for_replay($primary, $standby);
($status, $value, $detail) = check($standby, 'replication_lag');
is($value, '0', 'resumed standby catches up');

# an inactive replication slot is named
$primary->safe_psql('postgres', "SELECT pg_create_physical_replication_slot('dbops_idle_slot', true)");
($status, $value, $detail) = check($primary, 'replication_slots');
like($detail, qr/dbops_idle_slot \(physical, inactive, [\d.]+ \w+ retained, wal_status reserved\); 1 inactive/,
	'inactive slot named');
$primary->safe_psql('postgres', "SELECT pg_drop_replication_slot('dbops_idle_slot')");

# pg_dump keeps user-changed thresholds, and they restore over the defaults
$primary->safe_psql('postgres', q{
	UPDATE dbops.health_thresholds SET warning = 50, critical = 70 WHERE check_name = 'connections';
	UPDATE dbops.health_thresholds SET enabled = false WHERE check_name = 'database_size';
	CREATE DATABASE restored;
});
my $dump = $primary->basedir . '/dump.sql';
$primary->command_ok([ 'pg_dump', '-d', $primary->connstr('postgres'), '-f', $dump ], 'pg_dump');
$primary->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $primary->connstr('restored'), '-f', $dump ],
	'restore');
is($primary->safe_psql('restored',
		"SELECT warning || '/' || critical FROM dbops.health_thresholds WHERE check_name = 'connections'"),
	'50/70', 'changed thresholds restored');
is($primary->safe_psql('restored',
		"SELECT enabled FROM dbops.health_thresholds WHERE check_name = 'database_size'"),
	'f', 'disabled check restored');
is($primary->safe_psql('restored',
		"SELECT count(*) FROM dbops.health() WHERE check_name = 'database_size'"),
	'0', 'restored disabled check is not run');

$standby->stop;
$primary->stop;
done_testing();
