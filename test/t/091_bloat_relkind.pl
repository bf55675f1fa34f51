# dbops.bloat() looks at a relation's kind again once it holds the lock: a
# table that became a view while the call waited (CREATE RULE "_RETURN" on
# an empty table, in a transaction that held the table's lock) is refused
# with a clear error instead of being read as a table.  From 16 on a table
# can no longer become a view: there the transaction holding the lock alters
# the table instead, and the waiting call reads it once the lock is free.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('bloat_relkind');
$node->safe_psql(
	'postgres', q(
CREATE TABLE becomes_view (id int, pad text);
CREATE TABLE stays (id int, pad text);
INSERT INTO stays SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g;
));

# the converter holds the table's lock while the rule is not committed yet
my $with_view = $node->pg_version < 16;
my $converter = $node->background_psql('postgres');
$converter->query_safe(
	$with_view
	? q(BEGIN;
	  CREATE RULE "_RETURN" AS ON SELECT TO becomes_view
	      DO INSTEAD SELECT 1::int AS id, 'x'::text AS pad;)
	: q(BEGIN; ALTER TABLE becomes_view ADD COLUMN extra int;));

# dbops.bloat() sees a table, and waits for its lock
my $reader = $node->background_psql('postgres', on_error_stop => 0);
$reader->query_safe('\set VERBOSITY verbose');
$reader->query_until(qr/reading/,
	"\\echo reading\nSELECT * FROM dbops.bloat('becomes_view', 'exact');\n");
ok( $node->poll_query_until(
		'postgres',
		"SELECT EXISTS (SELECT FROM pg_locks WHERE relation = 'becomes_view'::regclass AND NOT granted)"),
	'dbops.bloat() waits for the lock');

$converter->query_safe('COMMIT');
is($node->safe_psql('postgres',
		"SELECT relkind FROM pg_class WHERE oid = 'becomes_view'::regclass"),
	$with_view ? 'v' : 'r', $with_view ? 'the table is a view now' : 'the table is still a table');

# the next query returns once the waiting one has finished
my ($out) = $reader->query('SELECT 1');
if ($with_view)
{
	like(
		$reader->{stderr},
		qr/ERROR:  42809: "becomes_view" is not a table, materialized view, TOAST table or index\nDETAIL:  It changed while dbops.bloat\(\) waited for its lock: it is now a view\./,
		'refused with 42809, saying what it became');
	unlike($out, qr/becomes_view/, 'and no row for it');
}
else
{
	is($reader->{stderr}, '', 'the waiting call read the altered table without an error');
}

# the same call on a table that stays a table still reports
is( $node->safe_psql(
		'postgres',
		"SELECT kind || ' ' || method FROM dbops.bloat('stays', 'exact') WHERE kind = 'table'"),
	'table exact', 'a table is still read');

$converter->quit;
$reader->quit;
$node->stop;
done_testing();
