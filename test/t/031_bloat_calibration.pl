# dbops.bloat(rel, 'sample') against 'exact' on the shapes of
# test/bloat_shapes.sql, at a tenth of the benchmark's size (bench/bloat_calibration
# is the full version):
#   - a sample that would read every page is read as exact, and equals it
#     byte for byte, whatever the seed;
#   - the samples of every relation under a few seeds: the mean absolute
#     error, the worst error and the share of 95% intervals that hold exact's
#     answer;
#   - exact against the sizes VACUUM FULL really gives (a table with a
#     dropped column included: the rewrite forms its tuples again).
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename qw(dirname);

my $node = dbops_primary('bloat_calibration', conf => [ 'autovacuum = off' ]);
my $shapes = dirname(__FILE__) . '/../bloat_shapes.sql';
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'scale=0.1', '-f', $shapes, '-d', $node->connstr('postgres') ],
	'the shapes are built');

$node->safe_psql('postgres', q{
CREATE TABLE cal_rel AS
  SELECT c.oid::regclass AS rel, t.oid AS tbl
  FROM pg_class t JOIN pg_class c
    ON c.oid = t.oid OR c.oid = t.reltoastrelid
    OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = t.oid)
  WHERE t.relnamespace = 'public'::regnamespace AND t.relkind = 'r' AND t.relname LIKE 's\_%'
    AND c.relkind IN ('r', 't', 'i');
CREATE TABLE cal_truth AS
  SELECT r.tbl, b.* FROM cal_rel r, LATERAL dbops.bloat(r.rel, 'exact') b WHERE b.relation = r.rel;
});
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM cal_truth'), '>=', 60,
	'tables, TOAST tables and indexes measured');

# every page: ci_width that no sample can reach, three seeds, and a budget
# that pays for reading the relation in full (for an index whose entries are
# checked against the table: one heap page per entry)
# (a relation whose pages all hold the same bytes, such as a TOAST table of
# equal chunks, has a zero-width interval after the first round and is not
# read further: its sample must still be exact's answer)
is( $node->safe_psql('postgres', q{
SELECT string_agg(format('%s seed %s: %s %s [%s, %s], exact %s', t.relation, s, b.method, b.bloat_bytes,
                         b.ci_low_pct, b.ci_high_pct, t.bloat_bytes), E'\n' ORDER BY t.relation::text, s)
FROM cal_truth t, generate_series(1, 3) s,
     LATERAL dbops.bloat(t.relation, 'sample', ci_width => 0.0001, max_pages => 100000000, seed => s) b
WHERE b.relation = t.relation
  AND (b.bloat_bytes <> t.bloat_bytes OR (b.method <> 'exact' AND b.ci_low_pct <> b.ci_high_pct))}),
	'', 'a sample that would read every page is exact, byte for byte, under every seed');

# the same with a budget that cannot pay for a full read after the first
# rounds: the sample stops a page short and says so
my $frame = $node->safe_psql('postgres', q{
SELECT size_bytes / 8192 FROM cal_truth WHERE relation = 's_narrow_rand'::regclass});
my ($method, $read, $note) = split /\|/, $node->safe_psql('postgres', qq{
SELECT method, pages_read, note FROM dbops.bloat('s_narrow_rand', 'sample', ci_width => 0.0001,
    max_pages => $frame + 50, seed => 1) WHERE relation = 's_narrow_rand'::regclass});
is($method, 'sample', 'over budget for a full read: still a sample');
is($read, $frame - 1, 'one page short of the whole table');
like($note, qr/a page short of the whole relation/, 'and the note says why');

# calibration: default arguments and a fixed budget of 100 pages, 5 seeds
# (samples whose budget could not pay for checking index entries against
# the table say so in note and count dead rows' entries as live: left out)
$node->safe_psql('postgres', q{
CREATE TABLE cal_sample AS
  SELECT 'default' AS series, s AS seed, b.*
  FROM cal_truth t, generate_series(1, 5) s, LATERAL dbops.bloat(t.relation, 'sample', seed => s) b
  WHERE b.relation = t.relation
  UNION ALL
  SELECT '100 pages', s, b.*
  FROM cal_truth t, generate_series(1, 5) s,
       LATERAL dbops.bloat(t.relation, 'sample', max_pages => 100, ci_width => 0.1, seed => s) b
  WHERE b.relation = t.relation;
});
for my $series ('default', '100 pages')
{
	my ($n, $mae, $worst, $cover) = split /\|/, $node->safe_psql('postgres', qq{
SELECT count(*), avg(abs(s.bloat_pct - t.bloat_pct)), max(abs(s.bloat_pct - t.bloat_pct)),
       100.0 * avg((t.bloat_pct BETWEEN s.ci_low_pct AND s.ci_high_pct)::int)
FROM cal_truth t JOIN cal_sample s USING (relation)
WHERE s.series = '$series' AND s.method = 'sample'
  AND coalesce(s.note, '') NOT LIKE '%entries not checked against the table%'});
	note(sprintf('%s: %d samples, mean abs error %.3f, worst %.1f, coverage %.1f%%',
		$series, $n, $mae, $worst, $cover));
	cmp_ok($n, '>=', 100, "$series: relations large enough to be sampled");
	cmp_ok($mae, '<=', $series eq 'default' ? 0.8 : 2, "$series: mean absolute error");
	cmp_ok($cover, '>=', 85, "$series: share of 95% intervals holding exact's answer");
}
# the held-out shape of the report: a tenth of the rows TOASTed, a third
# updated; later rounds of a sample once re-read pages and missed the last
# ones, which put its answer 2 to 4 points too high
my ($bias, $worst) = split /\|/, $node->safe_psql('postgres', q{
SELECT avg(s.bloat_pct - t.bloat_pct), max(abs(s.bloat_pct - t.bloat_pct))
FROM cal_truth t, generate_series(1, 20) g,
     LATERAL dbops.bloat('s_toast_mix', 'sample', ci_width => 0.5, max_pages => 330, seed => g) s
WHERE t.relation = 's_toast_mix'::regclass AND s.relation = t.relation});
cmp_ok(abs($bias), '<', 0.5, "s_toast_mix, 20 seeds: no bias (mean error $bias)");
cmp_ok($worst, '<', 2, "s_toast_mix: every seed within 2 points ($worst)");

# exact against a real rewrite
$node->safe_psql('postgres', q{
SELECT format('VACUUM FULL %s', oid::regclass) FROM pg_class
WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname LIKE 's\_%' \gexec
});
is( $node->safe_psql('postgres', q{
SELECT string_agg(format('%s: exact says %s bytes after, the rewrite gave %s', t.relation,
                         t.size_bytes - t.bloat_bytes, a.after), E'\n' ORDER BY t.relation::text)
FROM cal_truth t,
     LATERAL (SELECT coalesce(pg_relation_size(CASE WHEN t.kind = 'toast'
                                           THEN (SELECT reltoastrelid FROM pg_class WHERE oid = t.tbl)
                                           ELSE t.relation END), 0) AS after) a
WHERE t.kind IN ('table', 'toast', 'index') AND t.size_bytes - t.bloat_bytes <> a.after}),
	'', 'exact gives the size VACUUM FULL gives, for every table, TOAST table and index');

done_testing();
