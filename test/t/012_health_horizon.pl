# The checks long_transaction and xmin_horizon, as a pg_monitor member:
#
#  - long_transaction names a session that keeps its transaction open while
#    it runs short queries, which neither long_query nor idle_in_transaction
#    grades;
#  - xmin_horizon names what holds the horizon back: a logical slot's
#    catalog_xmin, an inactive physical slot's xmin (left by a standby with
#    hot_standby_feedback), a prepared transaction by its gid, an open
#    REPEATABLE READ transaction by its pid, and a standby's
#    hot_standby_feedback by its WAL sender; each with its hint;
#  - a role without pg_read_all_stats is told what it cannot read;
#  - on a hot standby both checks run, and name what is held there.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = dbops_primary('horizon', allows_streaming => 1,
	conf => [ 'wal_level = logical', 'max_prepared_transactions = 10' ]);
$primary->safe_psql('postgres', q{
	CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
	CREATE ROLE app LOGIN;
	CREATE ROLE plain LOGIN;
	CREATE TABLE t (id int);
	INSERT INTO t SELECT generate_series(1, 10);
	GRANT SELECT, INSERT ON t TO app;
	-- graded from the first transaction / second on, so that the hints show
	UPDATE dbops.health_thresholds SET warning = 1, critical = 1000000000
	 WHERE check_name = 'xmin_horizon';
	UPDATE dbops.health_thresholds SET warning = 2, critical = 3600
	 WHERE check_name = 'long_transaction';
	UPDATE dbops.health_thresholds SET warning = 60, critical = 3600
	 WHERE check_name IN ('idle_in_transaction', 'long_query');
	-- the slot a standby with hot_standby_feedback leaves an xmin in
	SELECT pg_create_physical_replication_slot('horizon_phys', true);
});

# The standby whose hot_standby_feedback the primary sees (no slot), with
# the base backup the slot's standby starts from too.
my $standby = dbops_standby($primary, 'horizon_standby',
	conf => [ 'hot_standby_feedback = on', 'wal_receiver_status_interval = 1' ]);

# check(NODE, NAME[, ROLE]): status, value, detail and hint of one check
sub check
{
	my ($node, $name, $role) = @_;
	$role //= 'monitor';
	my $row = $node->safe_psql('postgres',
		"SET ROLE $role; SELECT status || '|' || coalesce(value::text, '') || '|'
		   || coalesce(detail, '') || '|' || coalesce(hint, '')
		   FROM dbops.health() WHERE check_name = '$name'");
	return split /\|/, $row, 4;
}

# burn(N): N transactions with an xid each, so that what holds the horizon
# ages by N
sub burn
{
	my ($n) = @_;
	$primary->safe_psql('postgres', join(";\n", ('SELECT pg_current_xact_id()') x $n));
	return;
}

sub session
{
	my ($node, $application) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0,
		extra_params => [ '-U', 'app' ]);
	$s->query_safe("SET application_name = '$application'");
	return ($s, $s->query_safe('SELECT pg_backend_pid()'));
}

# ---------------------------------------------------------------------------
# long_transaction: a transaction open for seconds, running short queries
# ---------------------------------------------------------------------------
my ($batch, $batch_pid) = session($primary, 'horizon_batch');
$batch->query_safe('BEGIN; SELECT 1');
$batch->query_safe('SELECT pg_sleep(0.5)') for 1 .. 5;

my ($status, $value, $detail, $hint) = check($primary, 'long_transaction');
is($status, 'warning', 'long_transaction: a transaction open past its warning is graded');
cmp_ok($value, '>=', 2.5, 'long_transaction: its value is the transaction age in seconds');
like($detail,
	qr/^1 open transaction\(s\), oldest: pid $batch_pid \(app\@postgres, application horizon_batch, idle in transaction, open [\d.]+s\): SELECT pg_sleep\(0\.5\)\s*;?$/,
	'long_transaction names pid, user, application, state, age and query');
like($hint, qr/pg_terminate_backend\(pid\)/, 'long_transaction: the hint says how to end it');
($status) = check($primary, 'idle_in_transaction');
is($status, 'ok', 'idle_in_transaction does not grade it (idle only between short queries)');
($status) = check($primary, 'long_query');
is($status, 'ok', 'long_query does not grade it (its queries are short)');
$batch->query_safe('COMMIT');
($status, $value, $detail) = check($primary, 'long_transaction');
is("$status $value $detail", 'ok 0 no other transaction is open', 'long_transaction: ok once it commits');

# ---------------------------------------------------------------------------
# xmin_horizon: each kind of holder
# ---------------------------------------------------------------------------

# a logical slot's catalog_xmin
$primary->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('horizon_logical', 'test_decoding')");
burn(20);
($status, $value, $detail, $hint) = check($primary, 'xmin_horizon');
is($status, 'warning', 'xmin_horizon: graded');
cmp_ok($value, '>=', 20, 'xmin_horizon: the value is the age in transactions');
like($detail,
	qr/\d+ transactions \(catalog_xmin \d+\): slot horizon_logical \(logical, inactive for [^;)]+; catalog_xmin holds back the system catalogs only\)/,
	'xmin_horizon names an inactive logical slot by its catalog_xmin');
like($hint, qr/pg_drop_replication_slot\('horizon_logical'\)/, 'the hint says how to drop the slot');
$primary->safe_psql('postgres', "SELECT pg_drop_replication_slot('horizon_logical')");

# an inactive physical slot with the xmin a standby's feedback left in it
my $slotted = dbops_standby($primary, 'horizon_slotted',
	conf => [ "primary_slot_name = 'horizon_phys'", 'hot_standby_feedback = on',
		'wal_receiver_status_interval = 1' ]);
$primary->poll_query_until('postgres',
	"SELECT xmin IS NOT NULL FROM pg_replication_slots WHERE slot_name = 'horizon_phys'")
  or die 'the standby left no xmin in its slot';
$slotted->stop;
$primary->poll_query_until('postgres',
	"SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'horizon_phys'")
  or die 'the slot stays active';
burn(20);
my $slot_age = $primary->safe_psql('postgres',
	"SELECT age(xmin) FROM pg_replication_slots WHERE slot_name = 'horizon_phys'");
($status, $value, $detail, $hint) = check($primary, 'xmin_horizon');
like($detail,
	qr/(\d+) transactions \(xmin \d+\): slot horizon_phys \(physical, inactive for (an unknown time|[\d.]+s|\d+m \d+s)\)/,
	'xmin_horizon names an inactive physical slot by its xmin');
$detail =~ /(\d+) transactions \(xmin \d+\): slot horizon_phys/;
cmp_ok($1, '>=', $slot_age, "the slot's age is at least age(xmin) read before");
cmp_ok($value, '>=', $slot_age, 'the value is at least the slot xmin age');
like($hint, qr/pg_drop_replication_slot\('horizon_phys'\)/, 'the hint names the physical slot');

# a prepared transaction
$primary->safe_psql('postgres',
	"BEGIN; INSERT INTO t VALUES (0); PREPARE TRANSACTION 'horizon_gid'");
burn(10);
($status, $value, $detail, $hint) = check($primary, 'xmin_horizon');
like($detail,
	qr/\d+ transactions \(xid \d+\): prepared transaction 'horizon_gid' \(\w+\@postgres, prepared [\d.]+s ago\)/,
	'xmin_horizon names a prepared transaction by its gid');
like($hint, qr/COMMIT PREPARED 'horizon_gid' or ROLLBACK PREPARED 'horizon_gid' in database postgres/,
	'the hint says how to finish the prepared transaction');

# an open transaction holding a REPEATABLE READ snapshot
my ($reader, $reader_pid) = session($primary, 'horizon_reader');
$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t');
burn(10);
($status, $value, $detail, $hint) = check($primary, 'xmin_horizon');
like($detail, qr/^\d+ holder\(s\) of the xmin horizon, oldest: /, 'xmin_horizon counts its holders');
like($detail,
	qr/\d+ transactions \(backend_xmin \d+\): pid $reader_pid \(app\@postgres, application horizon_reader, idle in transaction, open [\d.]+s\): SELECT count\(\*\) FROM t/,
	'xmin_horizon names an open transaction by its pid');
like($detail, qr/prepared transaction 'horizon_gid'.*pid $reader_pid/,
	'holders are named oldest first');
like($hint, qr/pg_terminate_backend\($reader_pid\)/, 'the hint names the session to end');
like($hint, qr/ROLLBACK PREPARED 'horizon_gid'/, 'one hint for each kind of holder named');

# one with an xid, not only a snapshot: its xid is what it holds
my ($writer, $writer_pid) = session($primary, 'horizon_writer');
$writer->query_safe('BEGIN; INSERT INTO t VALUES (1)');
burn(5);
($status, $value, $detail) = check($primary, 'xmin_horizon');
like($detail, qr/\d+ transactions \(backend_xid \d+\): pid $writer_pid \(/,
	'xmin_horizon names a transaction by its xid');

# a role without pg_read_all_stats is told what it cannot read
($status, $value, $detail, $hint) = check($primary, 'xmin_horizon', 'plain');
is("$status|$detail", "skipped|naming the sessions that hold the xmin horizon needs the privileges of pg_read_all_stats",
	'xmin_horizon is skipped without pg_read_all_stats');
($status) = check($primary, 'long_transaction', 'plain');
is($status, 'skipped', 'long_transaction is skipped without pg_read_all_stats');

# all finished: the slot, the prepared transaction, the sessions
$writer->query_safe('COMMIT');
$reader->query_safe('COMMIT');
$primary->safe_psql('postgres', "COMMIT PREPARED 'horizon_gid'");
$primary->safe_psql('postgres', "SELECT pg_drop_replication_slot('horizon_phys')");
($status, $value, $detail) = check($primary, 'xmin_horizon');
unlike($detail, qr/horizon_gid|horizon_phys|pid ($reader_pid|$writer_pid) /,
	'xmin_horizon no longer names what has ended');

# ---------------------------------------------------------------------------
# a standby's hot_standby_feedback, and both checks on the hot standby
# ---------------------------------------------------------------------------
wait_for_replay($primary, $standby);
my ($on_standby, $on_standby_pid) = session($standby, 'horizon_standby_reader');
$on_standby->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t');
burn(20);
$primary->poll_query_until('postgres',
	"SELECT age(backend_xmin) >= 20 FROM pg_stat_replication WHERE application_name = 'horizon_standby'")
  or die "the standby's feedback does not hold the primary's horizon";
($status, $value, $detail, $hint) = check($primary, 'xmin_horizon');
like($detail,
	qr/\d+ transactions \(backend_xmin \d+\): standby horizon_standby \(WAL sender pid \d+(, from [0-9a-f.:]+|, local)?, hot_standby_feedback, for an unknown time\)/,
	"xmin_horizon names the standby whose feedback holds the primary's horizon");
like($hint, qr/hot_standby_feedback off there/, "the hint is about the standby's query or feedback");

($status, $value, $detail, $hint) = check($standby, 'xmin_horizon');
isnt($status, 'unknown', 'xmin_horizon runs on the standby');
like($detail, qr/^standby with hot_standby_feedback on \(what holds the horizon here holds back the primary's vacuum too\): /,
	'on the standby, the detail says what its horizon means for the primary');
like($detail,
	qr/\d+ transactions \(backend_xmin \d+\): pid $on_standby_pid \(app\@postgres, application horizon_standby_reader, idle in transaction, open [\d.]+s\)/,
	'on the standby, xmin_horizon names the session holding a snapshot there');
sleep 2;
($status, $value, $detail) = check($standby, 'long_transaction');
is($status, 'warning', 'long_transaction runs on the standby, with the primary\'s thresholds');
like($detail, qr/^1 open transaction\(s\), oldest: pid $on_standby_pid \(app\@postgres, application horizon_standby_reader, idle in transaction, open /,
	'on the standby, long_transaction names the session there');
is($standby->safe_psql('postgres',
		"SET ROLE monitor; SELECT string_agg(check_name || ' ' || status, ', ') FROM dbops.health()
		  WHERE check_name IN ('xmin_horizon', 'long_transaction') AND status IN ('unknown', 'skipped')"),
	'', 'pg_monitor member on the standby: neither check unknown nor skipped');
$on_standby->query_safe('COMMIT');

$batch->quit;
$reader->quit;
$writer->quit;
$on_standby->quit;
$standby->stop;
$primary->stop;
done_testing();
