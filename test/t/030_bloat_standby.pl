# dbops.bloat() and the bloat health check on a streaming hot standby: they
# only read, so they work there and agree with the primary.  Also checks that
# dbops.bloat() works with dbops not in shared_preload_libraries.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($primary, $standby) = dbops_pair('primary', 'standby', preload => '',
	conf => 'autovacuum = off',
	setup => sub {
		$_[0]->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, pad text);
	INSERT INTO t SELECT g, repeat('x', 80) FROM generate_series(1, 50000) g;
	DELETE FROM t WHERE id % 2 = 0;
	VACUUM t;
	CREATE ROLE mon LOGIN IN ROLE pg_monitor;
});
	});

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby is in recovery');

my $q = q{SELECT relation, method, bloat_bytes FROM dbops.bloat('t', 'exact') ORDER BY relation::text};
is($standby->safe_psql('postgres', $q), $primary->safe_psql('postgres', $q),
	'exact on the standby gives the primary\'s answer');

my ($pct) = $standby->safe_psql('postgres',
	q{SELECT bloat_pct FROM dbops.bloat('t', 'sample', max_pages => 100, seed => 1) WHERE relation = 't'::regclass});
ok($pct > 40 && $pct < 60, "sample on the standby sees half the table as bloat ($pct)");

my $stats = $standby->safe_psql('postgres',
	q{SELECT count(*) FROM dbops.bloat(method => 'stats')}, extra_params => ['-U', 'mon']);
ok($stats > 0, 'stats method runs on the standby for a pg_monitor member');

my $health = $standby->safe_psql('postgres',
	q{SELECT status <> 'unknown' FROM dbops.health() WHERE check_name = 'bloat'},
	extra_params => ['-U', 'mon']);
is($health, 't', 'bloat health check runs on the standby');

$standby->stop;
$primary->stop;
done_testing();
