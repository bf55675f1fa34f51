# dbops.health() archiver check: a failing archive_command is reported with
# the segments waiting, and a role without pg_monitor is told it cannot look.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('archiving', has_archiving => 1, allows_streaming => 1,
	conf => "archive_command = 'false'");
$node->safe_psql('postgres', q{
	CREATE ROLE plain LOGIN;
	CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
	CREATE TABLE t AS SELECT 1 AS x;
	SELECT pg_switch_wal();
});

# wait until the archiver has failed on the segment
$node->poll_query_until('postgres', 'SELECT failed_count > 0 FROM pg_stat_archiver')
  or die "archiver did not fail";

my $row = $node->safe_psql('postgres',
	"SET ROLE monitor; SELECT status || '|' || value || '|' || detail || '|' || hint
	   FROM dbops.health() WHERE check_name = 'archiver'");
my ($status, $value, $detail, $hint) = split /\|/, $row, 4;
is($status, 'warning', 'failing archiver is at least a warning below the thresholds');
cmp_ok($value, '>=', 1, 'segments waiting to be archived are counted');
like($detail, qr/^\d+ segment\(s\) waiting to be archived; 0 archived, [1-9]\d* failed; last failed [0-9A-F]{24} at .*; archiving is failing now$/,
	'detail names the failing segment');
like($hint, qr/archive_command/, 'hint points at archive_command');

# thresholds grade the backlog
$node->safe_psql('postgres',
	"UPDATE dbops.health_thresholds SET warning = 0, critical = 1 WHERE check_name = 'archiver'");
is($node->safe_psql('postgres', "SELECT status FROM dbops.health() WHERE check_name = 'archiver'"),
	'critical', 'backlog over the critical threshold');
is($node->safe_psql('postgres', 'SELECT dbops.health_status()'), 'critical', 'overall critical');

# a role without pg_monitor cannot count the .ready files
$row = $node->safe_psql('postgres',
	"SET ROLE plain; SELECT status || '|' || detail FROM dbops.health() WHERE check_name = 'archiver'");
like($row, qr/^skipped\|counting the WAL segments waiting in pg_wal\/archive_status needs the privileges of pg_monitor$/,
	'plain role: archiver skipped with the reason');

# once archiving works, the backlog drains and the check is ok again
$node->safe_psql('postgres',
	"UPDATE dbops.health_thresholds SET warning = 10, critical = 15 WHERE check_name = 'archiver'");
$node->append_conf('postgresql.conf', "archive_command = 'true'");
$node->reload;
$node->poll_query_until('postgres',
	"SELECT status = 'ok' AND value = 0 FROM dbops.health() WHERE check_name = 'archiver'")
  or die "archiver did not recover";
like($node->safe_psql('postgres', "SELECT detail FROM dbops.health() WHERE check_name = 'archiver'"),
	qr/^0 segment\(s\) waiting to be archived; [1-9]\d* archived/, 'recovered archiver: ok');

$node->stop;
done_testing();
