# Upgrades: a 1.0 install brought to the current version with
# ALTER EXTENSION dbops UPDATE has the same objects as a fresh install,
# compared object by object: functions with their signatures, volatility,
# privileges and SET clauses; tables with their columns, defaults,
# constraints, indexes, triggers and config-dump marks; views, event
# triggers, sequences, grants, comments, and the rows the install seeds.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('upgrade', dbops => 0);

my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'dbops'");
isnt($current, '1.0', "the default version ($current) is newer than 1.0");

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('fresh', 'CREATE EXTENSION dbops');
$node->safe_psql('upgraded', "CREATE EXTENSION dbops VERSION '1.0'");
is($node->safe_psql('upgraded', 'SELECT extversion FROM pg_extension WHERE extname = $$dbops$$'),
	'1.0', 'installed 1.0');
$node->safe_psql('upgraded', 'ALTER EXTENSION dbops UPDATE');
is($node->safe_psql('upgraded', 'SELECT extversion FROM pg_extension WHERE extname = $$dbops$$'),
	$current, "updated to $current");

# One query per kind of object; each prints one line per object, sorted,
# with everything that must match between the two paths.
sub acl
{
	my ($expr) = @_;
	return "(SELECT coalesce(string_agg(g.who || ':' || g.privilege_type || ':' || g.is_grantable, ','"
	  . " ORDER BY g.who, g.privilege_type), '-')"
	  . " FROM (SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END AS who,"
	  . " x.privilege_type, x.is_grantable FROM aclexplode($expr) x) g)";
}
my %describe = (
	members => q{
		SELECT pg_describe_object(classid, objid, objsubid)
		FROM pg_depend
		WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dbops')
		ORDER BY 1},
	functions => qq{
		SELECT format('%s kind=%s vol=%s strict=%s secdef=%s parallel=%s leakproof=%s config=%s acl=%s comment=%s%s',
			p.oid::regprocedure, p.prokind, p.provolatile, p.proisstrict, p.prosecdef,
			p.proparallel, p.proleakproof, p.proconfig,
			@{[ acl(q{coalesce(p.proacl, acldefault('f', p.proowner))}) ]},
			obj_description(p.oid, 'pg_proc'), E'\\n' || pg_get_functiondef(p.oid))
		FROM pg_proc p WHERE p.pronamespace = 'dbops'::regnamespace
		ORDER BY p.oid::regprocedure::text},
	relations => qq{
		SELECT format('%s kind=%s persistence=%s options=%s acl=%s comment=%s',
			c.relname, c.relkind, c.relpersistence, c.reloptions,
			@{[ acl(q{coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's'::"char" ELSE 'r'::"char" END, c.relowner))}) ]},
			obj_description(c.oid, 'pg_class'))
		FROM pg_class c WHERE c.relnamespace = 'dbops'::regnamespace
		ORDER BY 1},
	columns => qq{
		SELECT format('%s.%s #%s %s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s comment=%s',
			c.relname, a.attname,
			row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
			format_type(a.atttypid, a.atttypmod), a.attnotnull,
			pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
			a.attcollation::regcollation,
			@{[ acl('a.attacl') ]},
			col_description(c.oid, a.attnum))
		FROM pg_class c
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
		WHERE c.relnamespace = 'dbops'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
		ORDER BY 1},
	constraints => q{
		SELECT format('%s %s %s %s', conrelid::regclass, conname, contype, pg_get_constraintdef(oid))
		FROM pg_constraint WHERE connamespace = 'dbops'::regnamespace
		ORDER BY 1},
	indexes => q{
		SELECT pg_get_indexdef(indexrelid)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relnamespace = 'dbops'::regnamespace
		ORDER BY 1},
	triggers => q{
		SELECT format('%s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		WHERE c.relnamespace = 'dbops'::regnamespace AND NOT t.tgisinternal
		ORDER BY 1},
	views => q{
		SELECT format('%s %s', c.relname, pg_get_viewdef(c.oid))
		FROM pg_class c WHERE c.relnamespace = 'dbops'::regnamespace AND c.relkind IN ('v', 'm')
		ORDER BY 1},
	sequences => q{
		SELECT format('%s %s start=%s inc=%s min=%s max=%s cycle=%s owned=%s',
			s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin,
			s.seqmax, s.seqcycle,
			(SELECT refobjid::regclass || '.' || refobjsubid FROM pg_depend d
			 WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.deptype IN ('a', 'i')
			   AND d.refclassid = 'pg_class'::regclass))
		FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
		WHERE c.relnamespace = 'dbops'::regnamespace
		ORDER BY 1},
	event_triggers => q{
		SELECT format('%s %s %s %s %s', evtname, evtevent, evtfoid::regproc, evttags, evtenabled)
		FROM pg_event_trigger ORDER BY 1},
	config_dump => q{
		SELECT format('%s %s', x.rel::regclass, x.cond)
		FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(rel, cond)
		WHERE e.extname = 'dbops'
		ORDER BY 1},
	schema => qq{
		SELECT format('%s owner=%s acl=%s', nspname, nspowner::regrole,
			@{[ acl(q{coalesce(nspacl, acldefault('n', nspowner))}) ]})
		FROM pg_namespace WHERE nspname = 'dbops'},
	types => q{
		SELECT format('%s %s', t.oid::regtype, t.typtype)
		FROM pg_type t WHERE t.typnamespace = 'dbops'::regnamespace
		ORDER BY 1},
	seeded_rows => q{
		SELECT format('%s %s', 'health_thresholds', to_jsonb(h) - 'updated_at')
		FROM dbops.health_thresholds h ORDER BY 1},
);

for my $kind (sort keys %describe)
{
	my $fresh = $node->safe_psql('fresh', $describe{$kind});
	my $upgraded = $node->safe_psql('upgraded', $describe{$kind});
	my %f = map { $_ => 1 } split /\n/, $fresh;
	my %u = map { $_ => 1 } split /\n/, $upgraded;
	my @only_fresh = grep { !$u{$_} } split /\n/, $fresh;
	my @only_upgraded = grep { !$f{$_} } split /\n/, $upgraded;
	ok($fresh ne '' || $kind =~ /^(types|views)$/, "$kind: the fresh install has some");
	is($upgraded, $fresh, "$kind: upgraded 1.0 equals a fresh install")
	  or diag(join("\n",
		(map { "only in the fresh install: $_" } @only_fresh),
		(map { "only after the upgrade:   $_" } @only_upgraded)));
}

$node->stop;
done_testing();
