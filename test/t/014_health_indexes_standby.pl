# dbops.index_advice() and the index checks on a streaming standby, as a
# pg_monitor member: the catalog findings are the primary's, the scans the
# standby's own (a scan on the standby is not counted on the primary).
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($primary, $standby) = dbops_pair('primary', 'standby',
	setup => sub {
		$_[0]->safe_psql('postgres', q{
	CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
	CREATE TABLE parent (id int PRIMARY KEY);
	CREATE TABLE child (id int, parent_id int REFERENCES parent, v int);
	CREATE INDEX child_v ON child (v);
	CREATE INDEX child_v_again ON child (v);
	INSERT INTO child SELECT g, NULL, g FROM generate_series(1, 1000) g;
	ANALYZE child;
});
	});
wait_for_replay($primary, $standby);

my $kinds = q{SELECT string_agg(kind || ' ' || coalesce(index::text, relation::text), ', '
                                ORDER BY kind, coalesce(index::text, relation::text))
                FROM dbops.index_advice()};
my $want = 'duplicate_index child_v_again, fk_without_index child, '
  . 'unused_index child_v, unused_index child_v_again';
is($primary->safe_psql('postgres', "SET ROLE monitor; $kinds"), $want, 'findings on the primary');
is($standby->safe_psql('postgres', "SET ROLE monitor; $kinds"), $want, 'the same findings on the standby');

# a scan on the standby (of one of the two indexes on v) makes that index
# used there only
$standby->safe_psql('postgres',
	'SET enable_seqscan = off; SELECT count(*) FROM child WHERE v = 5; SELECT pg_stat_force_next_flush()');
my $unused = q{SELECT count(*) FROM dbops.index_advice() WHERE kind = 'unused_index'};
ok($standby->poll_query_until('postgres', "SELECT ($unused) = 1"), 'the standby counts its own scan');
is($primary->safe_psql('postgres', $unused), '2', 'a scan on the standby is not counted on the primary');

# the checks run on the standby, graded, naming their culprits
my $checks = $standby->safe_psql('postgres',
	q{SET ROLE monitor;
	  SELECT string_agg(check_name || ':' || status || ':' || value, ' ' ORDER BY check_name)
	    FROM dbops.health()
	   WHERE check_name IN ('unused_indexes', 'duplicate_indexes', 'fk_without_index', 'seq_scan_tables')});
is($checks, 'duplicate_indexes:warning:1 fk_without_index:warning:1 seq_scan_tables:ok:0 unused_indexes:ok:0',
	'the checks grade on the standby');
like( $standby->safe_psql('postgres',
		q{SELECT detail FROM dbops.health() WHERE check_name = 'fk_without_index'}),
	qr/public\.child \(foreign key child_parent_id_fkey \(parent_id\) references public\.parent/,
	'fk_without_index names the foreign key on the standby');

done_testing();
