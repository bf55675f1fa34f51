# dbops.bloat() looks at a relation's kind again once it holds the lock: a
# table that became a view while the call waited (CREATE RULE "_RETURN" on
# an empty table, in a transaction that held the table's lock) is refused
# with a clear error instead of being read as a table.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('bloat_relkind');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'dbops'");
$node->start;
$node->safe_psql(
	'postgres', q(
CREATE EXTENSION dbops;
CREATE TABLE becomes_view (id int, pad text);
CREATE TABLE stays (id int, pad text);
INSERT INTO stays SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g;
));

# the converter holds the table's lock while the rule is not committed yet
my $converter = $node->background_psql('postgres');
$converter->query_safe(
	q(BEGIN;
	  CREATE RULE "_RETURN" AS ON SELECT TO becomes_view
	      DO INSTEAD SELECT 1::int AS id, 'x'::text AS pad;));

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
	'v', 'the table is a view now');

# the next query returns once the waiting one has finished
my ($out) = $reader->query('SELECT 1');
like(
	$reader->{stderr},
	qr/ERROR:  42809: "becomes_view" is not a table, materialized view, TOAST table or index\nDETAIL:  It changed while dbops.bloat\(\) waited for its lock: it is now a view\./,
	'refused with 42809, saying what it became');
unlike($out, qr/becomes_view/, 'and no row for it');

# the same call on a table that stays a table still reports
is( $node->safe_psql(
		'postgres',
		"SELECT kind || ' ' || method FROM dbops.bloat('stays', 'exact') WHERE kind = 'table'"),
	'table exact', 'a table is still read');

$converter->quit;
$reader->quit;
$node->stop;
done_testing();
