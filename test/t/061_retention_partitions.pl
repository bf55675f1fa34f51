# A table partitioned by month on its time column: CALL dbops.purge() drops
# the partitions wholly older than the cutoff (never the last one), deletes
# the old rows of the boundary partition in batches, leaves younger rows and
# the default partition's young rows alone; detach-only keeps the tables.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('primary');

# monthly partitions from 8 months back to next month, plus a default one;
# one row per hour over the last 7 months; keep 3 months
$node->safe_psql('postgres', q{
CREATE TABLE m (at timestamptz NOT NULL, v int) PARTITION BY RANGE (at);
CREATE INDEX ON m (at);
DO $$
DECLARE
    s timestamptz;
BEGIN
    FOR i IN -8 .. 1 LOOP
        s := date_trunc('month', now()) + i * interval '1 month';
        EXECUTE format('CREATE TABLE %I PARTITION OF m FOR VALUES FROM (%L) TO (%L)',
                       'm_' || to_char(s, 'YYYY_MM'), s, s + interval '1 month');
    END LOOP;
END $$;
CREATE TABLE m_default PARTITION OF m DEFAULT;
INSERT INTO m SELECT g, 1 FROM generate_series(now() - interval '7 months', now(), interval '1 hour') g;
INSERT INTO m VALUES (now() + interval '1 year', 2);    -- lands in the default partition
SELECT dbops.add_retention_policy('m', 'at', '3 months', batch_size => 100);
});

my $expected_drop = $node->safe_psql('postgres', q{
SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'm'::regclass AND c.relname <> 'm_default'
   AND c.relname < 'm_' || to_char(now() - interval '3 months', 'YYYY_MM')});
$node->safe_psql('postgres', 'CREATE TABLE m_copy AS SELECT * FROM m');

is($node->safe_psql('postgres', 'SELECT partitions_to_drop FROM dbops.purge_preview()'),
	$expected_drop, 'preview counts the partitions to drop');

$node->safe_psql('postgres', 'CALL dbops.purge()');

my ($dropped, $detached, $deleted, $status) = split /\|/, $node->safe_psql('postgres',
	'SELECT partitions_dropped, partitions_detached, rows_deleted, status FROM dbops.purge_runs');
is($status, 'done', 'run done');
is($dropped, $expected_drop, 'partitions wholly older than the cutoff dropped');
is($detached, '0', 'nothing left detached');
cmp_ok($deleted, '>', 0, 'boundary partition rows deleted in batches');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_class WHERE relname LIKE 'm\\_2%' AND relkind = 'r' AND NOT relispartition"),
	'0', 'dropped partitions are gone, not left behind');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM m WHERE at < (SELECT cutoff FROM dbops.purge_runs)"),
	'0', 'no row older than the cutoff remains');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM m WHERE at >= (SELECT cutoff FROM dbops.purge_runs)"),
	$node->safe_psql('postgres',
		"SELECT count(*) FROM m_copy WHERE at >= (SELECT cutoff FROM dbops.purge_runs)"),
	'every row younger than the cutoff is kept (default partition included)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM m_default'), '1',
	'default partition untouched');

# detach-only, keep 1 second: every partition that ended before now goes
$node->safe_psql('postgres', q{
SELECT dbops.alter_retention_policy('m', keep => '1 second', drop_partitions => false);
DELETE FROM m_default;
});
$node->safe_psql('postgres', q{
SET dbops.purge_batch_max = 100000;
CALL dbops.purge();
});
my $left = $node->safe_psql('postgres',
	"SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'm'::regclass");
my $expect = $node->safe_psql('postgres',
	"SELECT 'm_' || to_char(now(), 'YYYY_MM') || ',m_' || to_char(date_trunc('month', now()) + interval '1 month', 'YYYY_MM') || ',m_default'");
is($left, $expect, 'this month, next month and the default partition stay attached');
cmp_ok( $node->safe_psql('postgres',
		'SELECT partitions_detached FROM dbops.purge_runs ORDER BY run_id DESC LIMIT 1'),
	'>', 0, 'old partitions detached');
cmp_ok( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_class WHERE relname LIKE 'm\\_2%' AND relkind = 'r' AND NOT relispartition"),
	'>', 0, 'detached partitions are kept as tables');
is($node->safe_psql('postgres', "SELECT count(*) FROM m WHERE at < now() - interval '1 minute'"),
	'0', 'old rows of the kept partitions deleted');

$node->stop;
done_testing();
