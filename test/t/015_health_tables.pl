# stale_statistics after crash recovery, which discards the cumulative
# statistics: a table never analyzed that holds rows then has no change
# count for autoanalyze to reach its threshold with, and is reported (at
# least a warning) until it is analyzed.  On a hot standby, the two table
# checks and the checks written in SQL run from the primary's catalog;
# dbops.add_check() is refused there.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($primary, $standby) = dbops_pair('primary', 'standby',
	setup => sub {
		# the catalogs analyzed first (CREATE EXTENSION changed them past
		# their thresholds): the tables below are then the stale ones
		$_[0]->safe_psql('postgres', 'ANALYZE');
		$_[0]->safe_psql('postgres', q{
	CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
	CREATE TABLE lost (id int) WITH (autovacuum_enabled = false);
	INSERT INTO lost SELECT generate_series(1, 5000);
	CREATE TABLE tiny (id int) WITH (autovacuum_enabled = false);
	INSERT INTO tiny VALUES (1);
	CREATE TABLE counted (id int);
	INSERT INTO counted SELECT generate_series(1, 100);
	ANALYZE counted;
	SELECT dbops.add_check('counted_rows', 'SELECT count(*) FROM public.counted', 200, 500);
});
	});

sub check
{
	my ($node, $name, $role) = @_;
	my $set = $role ? "SET ROLE $role;" : '';
	return $node->safe_psql('postgres',
		"$set SELECT status || '|' || coalesce(value::text, '') || '|' || coalesce(detail, '')
		 FROM dbops.health() WHERE check_name = '$name'");
}

# before the crash the new table's inserts are counted: past its threshold
# (50 rows) it is stale, and the wait is short
my ($status, $value, $detail) = split /\|/, check($primary, 'stale_statistics'), 3;
like($detail, qr/public\.lost \(never analyzed, 5000 rows changed since/,
	'a table never analyzed is stale by its change count');
unlike($detail, qr/public\.tiny/, 'a table of one row is under its threshold');

# an immediate stop: crash recovery at the next start discards the
# statistics, and the tables have none
$primary->stop('immediate');
$primary->start;
is($primary->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'lost' AND n_mod_since_analyze > 0}),
	'0', 'crash recovery discarded the change count');
($status, $value, $detail) = split /\|/, check($primary, 'stale_statistics'), 3;
is($status, 'warning', 'a table with rows and no statistics is at least a warning, however short the wait');
like($detail, qr/, 1 never analyzed that autoanalyze will not reach; .*public\.lost \(never analyzed, no statistics since the server lost them, autovacuum off\)/,
	'the detail names it and says why autoanalyze will not reach it');
unlike($detail, qr/public\.tiny|public\.counted/,
	'a table of one page, and one analyzed before, are not named');
is((split /\|/, check($primary, 'stale_statistics', 'monitor'), 2)[0], 'warning',
	'a pg_monitor member sees the same');

$primary->safe_psql('postgres', 'ANALYZE lost');
($status) = split /\|/, check($primary, 'stale_statistics');
is($status, 'ok', 'ANALYZE ends it');

# on the standby (which streamed the primary's catalog, not its statistics)
my $st = $standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()');
is($st, 't', 'the standby is in recovery');
wait_for_replay($primary, $standby);
for my $name (qw(stale_statistics table_freeze_age))
{
	($status) = split /\|/, check($standby, $name, 'monitor');
	like($status, qr/^(ok|warning)$/, "on a standby, $name runs for pg_monitor ($status)");
}
like(check($standby, 'table_freeze_age'), qr/\|oldest: /, 'on a standby, table_freeze_age names tables');
is(check($standby, 'counted_rows', 'monitor'), 'ok|100|',
	'on a standby, a check written in SQL runs (as its owner) for pg_monitor');
my ($ok, $out, $err) = $standby->psql('postgres',
	q{\set VERBOSITY verbose
SELECT dbops.add_check('x', 'SELECT 1')});
like($err, qr/25006: cannot run dbops\.add_check\(\) on a server in recovery.*HINT:.*add or remove them on the primary/s,
	'add_check is refused on a standby with 25006 and a hint');
($ok, $out, $err) = $standby->psql('postgres',
	q{\set VERBOSITY verbose
SELECT dbops.remove_check('counted_rows')});
like($err, qr/25006: cannot run dbops\.remove_check\(\)/, 'remove_check too');

done_testing();
