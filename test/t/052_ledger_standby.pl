# On a streaming standby the ledger reads work and every write function
# fails with SQLSTATE 25006 and a hint.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($primary, $standby) = dbops_pair('ledger_primary', 'ledger_standby', preload => '',
	setup => sub {
		$_[0]->safe_psql('postgres', "SELECT dbops.migrate('0001', 'one', 'CREATE TABLE t1 (id int)')");
	});

$primary->safe_psql('postgres', "SELECT dbops.migrate('0002', 'two', 'CREATE TABLE t2 (id int)')");
$primary->safe_psql('postgres', "SELECT dbops.migration_rollback('0002', 'DROP TABLE t2')");
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby is in recovery');
is( $standby->safe_psql('postgres',
		"SELECT string_agg(version || ':' || status, ',' ORDER BY version) FROM dbops.migration_status()"),
	'0001:applied,0002:rolled_back', 'migration_status() works on the standby');
is( $standby->safe_psql('postgres',
		"SELECT dbops.migration_pending('0001'), dbops.migration_pending('0002')"),
	'f|t', 'migration_pending() works on the standby');
is( $standby->safe_psql('postgres',
		"BEGIN; SELECT dbops.migration_pending('0003'); COMMIT;"),
	't', 'migration_pending() inside a transaction block works on the standby');
is( $standby->safe_psql('postgres',
		"SELECT status FROM dbops.health() WHERE check_name = 'migrations'"),
	'warning', 'the migrations health check runs on the standby (0002 rolled back)');

# a step the primary has open: the standby cannot see the primary's
# sessions, so it does not judge it
my $stepper = $primary->background_psql('postgres');
$stepper->query_safe("SELECT dbops.migration_step_begin('0004', 'step', index_name => 't1_id')");
$primary->wait_for_catchup($standby);
is( $standby->safe_psql('postgres', "SELECT count(*) FROM dbops.migration_steps"),
	'1', 'the open step is seen on the standby');
is( $standby->safe_psql('postgres',
		"SELECT value || ': ' || detail FROM dbops.health() WHERE check_name = 'migrations'"),
	'1: 0002 rolled back', 'and not reported by its migrations check');
$stepper->quit;

my %writes = (
	'migrate'            => "SELECT dbops.migrate('0003', 'x', 'CREATE TABLE t3 ()')",
	'migration_begin'    => "BEGIN; SELECT dbops.migration_begin('0003', 'x'); COMMIT;",
	'migration_rollback' => "SELECT dbops.migration_rollback('0001')",
	'migration_baseline' => "SELECT dbops.migration_baseline('0100')",
	'migration_repair'   => "SELECT dbops.migration_repair('0001', NULL)",
	'migration_import'   => "SELECT dbops.migration_import('dbops.migrations')",
	'migration_step_begin'  => "SELECT dbops.migration_step_begin('0005', 'x')",
	'migration_step_finish' => "SELECT dbops.migration_step_finish('0004')",
);
for my $f (sort keys %writes)
{
	my ($rc, $out, $err) =
	  $standby->psql('postgres', "\\set VERBOSITY verbose\n$writes{$f}");
	isnt($rc, 0, "$f fails on the standby");
	like($err, qr/ERROR:  25006: cannot .* on a standby/, "$f: SQLSTATE 25006");
	like($err, qr/HINT:  The migration ledger is written on the primary/, "$f: with a hint");
}

$standby->stop;
$primary->stop;
done_testing();
