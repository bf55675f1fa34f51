# Dump and restore: pg_dump -Fc of a database where dbops is in use
# (changed and disabled thresholds, reaper policies and log,
# the migration ledger with applied, rolled back, baseline and failed
# versions, a retention policy with its purge runs, health and bloat
# history) restores with pg_restore into a fresh database without an error
# or a warning; every table of the extension comes back row for row and
# every sequence with its value. The restored dbops then works:
# migration_status() reports no drift, an applied version is skipped and a
# new one applies, a purge deletes with new run ids, a new reaper policy gets
# a new id, the thresholds are the changed ones, and the health report and
# its snapshots run over the restored history.
#
# Across versions: with DBOPS_DUMP_OUT set (a directory) the dump and its
# manifest are left there as dbops-pgNN.dump and dbops-pgNN.manifest (NN:
# this server's major version); with DBOPS_DUMP_IN set, every dbops-pgNN.dump
# there from an older major version is restored with this version's
# pg_restore, compared with its manifest, and given the same checks.
use strict;
use warnings;
use File::Copy qw(copy);
use IPC::Run;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('dump', cron => 'postgres', pg_cron => 1, dbops => 0,
	conf => [ 'max_prepared_transactions = 0', 'dbops.reaper_naptime = 1' ]);
$node->safe_psql('postgres', 'CREATE ROLE app LOGIN');
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION dbops');

# The reaper worker copies its events into dbops.reaper_log of
# dbops.reaper_database, read when the server starts.
$node->append_conf('postgresql.conf', "dbops.reaper_database = 'src'");
$node->restart;
ok( $node->poll_query_until('src',
		'SELECT worker_pid IS NOT NULL AND extension_installed FROM dbops.reaper_status()'),
	'the reaper worker runs in src');

my $major = int($node->safe_psql('postgres', 'SHOW server_version_num') / 10000);

# ---------------------------------------------------------------------------
# Put dbops in use in src
# ---------------------------------------------------------------------------

# health thresholds: two changed, one disabled
$node->safe_psql(
	'src', q{
UPDATE dbops.health_thresholds SET warning = 30, critical = 120 WHERE check_name = 'long_query';
UPDATE dbops.health_thresholds SET warning = 70, critical = 90 WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET enabled = false WHERE check_name = 'database_size';
CREATE ROLE dump_checker;
GRANT EXECUTE ON FUNCTION dbops.add_check(text, text, numeric, numeric, text, text, text) TO dump_checker;
SET ROLE dump_checker;
SELECT dbops.add_check('two_rows', 'SELECT count(*), current_user::text FROM (VALUES (1), (2)) v',
                       warning => 2, critical => 5, unit => 'rows');
RESET ROLE;
});

# a user table with rows older and newer than the policy keeps
$node->safe_psql(
	'src', q{
CREATE TABLE ev (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, v text);
CREATE INDEX ev_ts_idx ON ev (ts);
INSERT INTO ev (ts, v)
SELECT now() - interval '60 days' - g * interval '1 hour', 'old ' || g FROM generate_series(1, 200) g;
INSERT INTO ev (ts, v)
SELECT now() - g * interval '1 hour', 'new ' || g FROM generate_series(1, 100) g;
});
ok($node->safe_psql('src', q{SELECT dbops.add_retention_policy('ev', 'ts', '30 days')}) > 0,
	'retention policy on ev added');
$node->safe_psql('src', 'CALL dbops.purge()');
is( $node->safe_psql('src',
		q{SELECT count(*) FILTER (WHERE ts < now() - interval '30 days') || '/' || count(*) FROM ev}),
	'0/100', 'the purge deleted the old rows of ev and kept the new ones');
is( $node->safe_psql('src',
		q{SELECT count(*) FROM dbops.purge_runs WHERE relation = 'ev' AND status = 'done' AND rows_deleted = 200}),
	'1', 'purge_runs records the run');

# reaper policies that match no session of this test
$node->safe_psql(
	'src', q{
INSERT INTO dbops.reaper_policies (application_name, idle_timeout, note)
VALUES ('batch%', '2 hours', 'batch hosts');
INSERT INTO dbops.reaper_policies (role_name, state, idle_timeout, keep_min, note)
VALUES ('app', 'idle in transaction', '10 minutes', 1, 'app sessions in transaction');
INSERT INTO dbops.reaper_policies (application_name, action, note)
VALUES ('report%', 'exempt', 'reporting');
});

# an idle session reaped by reap_idle(); the worker copies the event into
# dbops.reaper_log
my $idle = $node->background_psql('src', extra_params => [ '-U', 'app' ]);
$idle->query_safe(q{SET application_name = 'dump_idle'});
my $idle_pid = $idle->query_safe('SELECT pg_backend_pid()');
ok( $node->poll_query_until('src',
		"SELECT count(*) = 1 FROM dbops.reap_idle('1 second') WHERE pid = $idle_pid"),
	'the idle session is a candidate');
is( $node->safe_psql('src',
		"SELECT action FROM dbops.reap_idle('1 second', dry_run => false) WHERE pid = $idle_pid"),
	'terminate', 'reap_idle() terminates it');
ok(wait_backend_gone($node, $idle_pid), 'the idle session is gone');
eval { $idle->quit; };
ok( $node->poll_query_until('src',
		"SELECT count(*) = 1 FROM dbops.reaper_log WHERE pid = $idle_pid AND source = 'reap_idle'"),
	'the worker copied the event into dbops.reaper_log');

# dbops.scheduled_jobs: dbops.schedule() writes it in pg_cron's database
# (postgres here, kept out of the dump); src gets the row schedule() writes
is( $node->safe_psql('src', q{
INSERT INTO dbops.scheduled_jobs (job_name, username, database, schedule, command)
VALUES ('dbops-purge', 'postgres', 'src', '*/5 * * * *', 'CALL dbops.purge()')
RETURNING job_name}), 'dbops-purge', 'a scheduled job is recorded');

# the migration ledger: a baseline, applied versions, one rolled back, one
# failed attempt
my %body = (
	'0001' => q{CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
INSERT INTO customers (name) VALUES ('ada'), ('grace');},
	'0002' => q{CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, placed timestamptz NOT NULL DEFAULT now());
CREATE INDEX orders_customer_idx ON orders (customer_id);
INSERT INTO orders (customer_id) SELECT id FROM customers;},
	'0003' => q{CREATE TABLE scratch (x int);},
	'0005' => q{ALTER TABLE customers ADD COLUMN email text;},
);
my %description = (
	'0001' => 'customers',
	'0002' => 'orders',
	'0003' => 'scratch table',
	'0005' => 'customer email',
);
my $failing_body = q{ALTER TABLE no_such_table ADD COLUMN x int;};
# the versions applied in src, and the checksums their bodies have
my @applied = qw(0001 0002 0003);

sub migrate_sql
{
	my ($v, %o) = @_;
	my $req = $o{requires} ? ", requires => '$o{requires}'" : '';
	return "SELECT dbops.migrate('$v', '$description{$v}', \$body\$$body{$v}\$body\$$req)";
}

sub checksums_json
{
	my ($db) = @_;
	return $node->safe_psql($db,
		"SELECT jsonb_object_agg(v, dbops.migration_checksum(b)) FROM (VALUES "
		  . join(', ', map { "('$_', \$body\$$body{$_}\$body\$)" } @applied)
		  . ") AS t (v, b)");
}

is($node->safe_psql('src', q{SELECT dbops.migration_baseline('0000', 'schema before the ledger')}),
	'baseline', 'baseline 0000');
is($node->safe_psql('src', migrate_sql('0001')), 'applied', '0001 applied');
is($node->safe_psql('src', migrate_sql('0002', requires => '{0001}')), 'applied', '0002 applied');
is($node->safe_psql('src', migrate_sql('0003')), 'applied', '0003 applied');
is($node->safe_psql('src', q{SELECT dbops.migration_rollback('0003', 'DROP TABLE scratch')}),
	'rolled_back', '0003 rolled back');
my ($rc, $out, $err) = $node->psql('src',
	"SELECT dbops.migrate('0004', 'broken', \$body\$$failing_body\$body\$)");
isnt($rc, 0, '0004 fails');
like($err, qr/no_such_table/, '0004 fails with the error of its body');
is( $node->safe_psql('src',
		q{SELECT count(*) FROM dbops.migration_events WHERE version = '0004' AND event = 'failed' AND sqlstate = '42P01'}),
	'1', 'the failed attempt of 0004 is recorded');
is($node->safe_psql('src', q{SELECT count(*) > 0 FROM dbops.migration_objects WHERE version = '0002'}),
	't', 'the DDL of 0002 is captured');

# history
ok($node->safe_psql('src', 'SELECT inserted FROM dbops.health_snapshot()') > 0,
	'a health snapshot in src');
ok($node->safe_psql('src', 'SELECT inserted FROM dbops.bloat_snapshot(min_size => 0)') > 0,
	'a bloat snapshot in src');
$node->safe_psql('src', 'SELECT dbops.health_snapshot()');

# ---------------------------------------------------------------------------
# The manifest of a database: one line per key, "key<TAB>value"
# ---------------------------------------------------------------------------

sub manifest
{
	my ($db) = @_;
	my %m;
	my $pre = "SET TimeZone = 'UTC'; SET search_path = public;";
	my $ext = q{SELECT oid FROM pg_extension WHERE extname = 'dbops'};

	# the tables of the extension: rows, and a digest of their contents
	# (bloat_history.relid is an OID, which a restore does not keep)
	my @tables = split /\n/, $node->safe_psql(
		$db, qq{
SELECT c.oid::regclass FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass
  AND d.deptype = 'e' AND d.refobjid = ($ext) AND c.relkind = 'r'
ORDER BY c.oid::regclass::text});
	for my $t (@tables)
	{
		$m{"table $t"} = $node->safe_psql(
			$db, qq{$pre
SELECT 'rows=' || count(*) || ' md5=' || md5(coalesce(string_agg(j, E'\\n' ORDER BY j COLLATE "C"), ''))
FROM (SELECT (to_jsonb(t) - 'relid')::text AS j FROM $t t) s});
	}

	# the sequences of the extension, and those its tables own (identity)
	my @seqs = split /\n/, $node->safe_psql(
		$db, qq{
SELECT c.oid::regclass FROM pg_class c
WHERE c.relkind = 'S' AND (
    EXISTS (SELECT 1 FROM pg_depend d
            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
              AND d.refobjid = ($ext))
 OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_depend e
              ON e.classid = 'pg_class'::regclass AND e.objid = d.refobjid
             AND e.refclassid = 'pg_extension'::regclass AND e.deptype = 'e'
             AND e.refobjid = ($ext)
            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
ORDER BY c.oid::regclass::text});
	for my $s (@seqs)
	{
		$m{"sequence $s"} = $node->safe_psql($db,
			"SELECT 'last_value=' || last_value || ' is_called=' || is_called FROM $s");
	}

	# the user's tables
	my @user = split /\n/, $node->safe_psql(
		$db, q{
SELECT c.oid::regclass FROM pg_class c
WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY c.oid::regclass::text});
	for my $t (@user)
	{
		$m{"user_table $t"} = 'rows=' . $node->safe_psql($db, "SELECT count(*) FROM $t");
	}

	# the ledger as migration_status() reports it, against the applied bodies
	my $json = checksums_json($db);
	for my $line (split /\n/, $node->safe_psql(
			$db, qq{$pre
SELECT version || E'\\t' || to_jsonb(s)::text FROM dbops.migration_status('$json') s}))
	{
		my ($v, $row) = split /\t/, $line, 2;
		$m{"migration_status $v"} = $row;
	}
	for my $v (@applied)
	{
		$m{"checksum $v"} = $node->safe_psql($db,
			"SELECT dbops.migration_checksum(\$body\$$body{$v}\$body\$)");
	}
	return \%m;
}

sub write_manifest
{
	my ($m, $file) = @_;
	open my $fh, '>', $file or die "cannot write $file: $!";
	print $fh "$_\t$m->{$_}\n" for sort keys %$m;
	close $fh or die "cannot write $file: $!";
}

sub read_manifest
{
	my ($file) = @_;
	my %m;
	open my $fh, '<', $file or die "cannot read $file: $!";
	while (my $line = <$fh>)
	{
		chomp $line;
		my ($k, $v) = split /\t/, $line, 2;
		$m{$k} = $v;
	}
	close $fh;
	return \%m;
}

# Compares key by key, so that a failure names the table or sequence.
sub compare_manifest
{
	my ($db, $expected, $label) = @_;
	my $got = manifest($db);
	my %keys = map { $_ => 1 } keys %$got, keys %$expected;
	cmp_ok(scalar(grep { /^table / } keys %$expected), '>=', 10,
		"$label: the manifest lists the extension's tables");
	for my $k (sort keys %keys)
	{
		is($got->{$k}, $expected->{$k}, "$label: $k as in the source");
	}
}

# pg_restore DUMP into a fresh database DB: exits 0, writes nothing on stderr
sub restore
{
	my ($dump, $db, $label) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	my ($stdout, $stderr) = ('', '');
	my $ok = IPC::Run::run(
		[ 'pg_restore', '--exit-on-error', '-d', $node->connstr($db), $dump ],
		'>', \$stdout, '2>', \$stderr);
	ok($ok, "$label: pg_restore exits 0");
	is($stderr, '', "$label: pg_restore writes nothing on stderr");
}

# ---------------------------------------------------------------------------
# What the restored dbops does
# ---------------------------------------------------------------------------

sub works
{
	my ($db, $expected, $label) = @_;
	my $q = sub { $node->safe_psql($db, "SET TimeZone = 'UTC'; " . $_[0]) };

	# the ledger
	my $json = checksums_json($db);
	is( $q->(qq{SELECT count(*) FROM dbops.migration_status('$json')
	            WHERE status = 'applied' AND drift IS DISTINCT FROM false}),
		'0', "$label: migration_status() shows no drift for the applied versions");
	is( $q->(qq{SELECT string_agg(version || '=' || status, ' ' ORDER BY version)
	            FROM dbops.migration_status('$json')}),
		join(' ', map { my $v = $_ =~ s/^migration_status //r;
			$v . '=' . ($expected->{$_} =~ /"status": "([^"]*)"/)[0] }
			sort grep { /^migration_status / } keys %$expected),
		"$label: migration_status() gives the statuses of the source");
	my $max_event = $q->('SELECT max(event_id) FROM dbops.migration_events');
	my $max_object = $q->('SELECT max(object_id) FROM dbops.migration_objects');
	my $row0002 = $q->(q{SELECT to_jsonb(m)::text FROM dbops.migrations m WHERE version = '0002'});
	is($q->(migrate_sql('0002', requires => '{0001}')), 'skipped',
		"$label: migrate() of applied 0002 with its body skips it");
	is($q->(q{SELECT to_jsonb(m)::text FROM dbops.migrations m WHERE version = '0002'}),
		$row0002, "$label: the ledger row of 0002 is unchanged");
	is($q->(q{SELECT count(*) FROM orders}), $q->(q{SELECT count(*) FROM customers}),
		"$label: the body of 0002 did not run again");
	is( $q->(qq{SELECT event FROM dbops.migration_events WHERE event_id > $max_event ORDER BY event_id}),
		'skip', "$label: a skip event with a new event_id");
	is($q->(migrate_sql('0005')), 'applied', "$label: a new version 0005 applies");
	is($q->(q{SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'email'}),
		'1', "$label: the body of 0005 ran");
	is( $q->(qq{SELECT string_agg(event, ' ' ORDER BY event_id) FROM dbops.migration_events
	            WHERE event_id > $max_event}),
		'skip apply', "$label: the apply event of 0005 has an event_id above the restored ones");
	is( $q->(qq{SELECT count(*) > 0 AND min(object_id) > $max_object FROM dbops.migration_objects
	            WHERE version = '0005'}),
		't', "$label: the DDL of 0005 is captured with object_ids above the restored ones");

	# retention
	my $max_run = $q->('SELECT max(run_id) FROM dbops.purge_runs');
	my $new_rows = $q->('SELECT count(*) FROM ev');
	$q->(q{INSERT INTO ev (ts, v) SELECT now() - interval '45 days' - g * interval '1 minute', 'late ' || g
	       FROM generate_series(1, 50) g});
	$q->('CALL dbops.purge()');
	is( $q->(q{SELECT count(*) FILTER (WHERE ts < now() - interval '30 days') || '/' || count(*) FROM ev}),
		"0/$new_rows", "$label: a purge deletes the rows older than the policy keeps");
	is( $q->(qq{SELECT string_agg(status || ':' || rows_deleted, ' ') FROM dbops.purge_runs
	            WHERE run_id > $max_run}),
		'done:50', "$label: its purge_runs row has a run_id above the restored ones");

	# the reaper
	my $max_policy = $q->('SELECT max(id) FROM dbops.reaper_policies');
	my $id = $q->(q{INSERT INTO dbops.reaper_policies (application_name, idle_timeout, note)
	               VALUES ('etl%', '1 hour', 'added after the restore') RETURNING id});
	ok($id > $max_policy, "$label: a new reaper policy gets id $id, above the restored $max_policy");
	is($q->('SELECT count(*) FROM dbops.reaper_status()'), '1', "$label: reaper_status() runs");

	# health
	is( $q->(q{SELECT string_agg(check_name || ':' || coalesce(warning::text, '-') || '/'
	                             || coalesce(critical::text, '-') || ':' || enabled, ' ' ORDER BY check_name)
	           FROM dbops.health_thresholds
	           WHERE check_name IN ('long_query', 'connections', 'database_size')}),
		'connections:70/90:true database_size:-/-:false long_query:30/120:true',
		"$label: the thresholds are the changed ones");
	is( $q->(q{SELECT string_agg(check_name, ' ' ORDER BY check_name) FROM dbops.health()}),
		$q->(q{SELECT string_agg(c.check_name, ' ' ORDER BY c.check_name) FROM dbops.health_checks() c
		       WHERE c.check_name <> 'database_size'}),
		"$label: health() returns every enabled check");
	is($q->(q{SELECT warning || '/' || critical FROM dbops.health() WHERE check_name = 'long_query'}),
		'30/120', "$label: health() grades with the restored thresholds");
	is( $q->(q{SELECT status || ' ' || value || ' ' || warning || '/' || critical || ' ' || detail
	           FROM dbops.health() WHERE check_name = 'two_rows'}),
		'warning 2 2/5 dump_checker',
		"$label: a check added with add_check() is restored with its thresholds and runs as its owner");
	my $restored = $q->(q{SELECT string_agg(taken_at::text, ',' ORDER BY taken_at)
	                      FROM dbops.health_history WHERE check_name = 'connections'});
	my $snapshots = $q->(q{SELECT count(*) FROM dbops.health_history WHERE check_name = 'connections'});
	ok($snapshots > 0, "$label: the restored history has $snapshots snapshots of connections");
	is( $q->(q{SELECT string_agg(taken_at::text, ',' ORDER BY taken_at)
	           FROM dbops.health_trend('connections', since => '100 years')}),
		$restored, "$label: health_trend() sees the restored history");
	my $before = $q->('SELECT count(*) FROM dbops.health_history');
	my $snap = $q->(q{SELECT inserted || ' ' || deleted FROM dbops.health_snapshot(keep => '100 years')});
	my ($inserted, $deleted) = split / /, $snap;
	ok($inserted > 0, "$label: health_snapshot() inserts $inserted rows");
	is($q->('SELECT count(*) FROM dbops.health_history'), $before + $inserted,
		"$label: health_snapshot() conflicts with no restored row");
	is($q->(q{SELECT count(*) FROM dbops.health_trend('connections', since => '100 years')}),
		$snapshots + 1, "$label: health_trend() sees the restored history and the new snapshot");
	ok($q->('SELECT inserted FROM dbops.bloat_snapshot(min_size => 0)') > 0,
		"$label: bloat_snapshot() runs");
}

# ---------------------------------------------------------------------------
# Dump, restore, compare, use
# ---------------------------------------------------------------------------

my $src_manifest = manifest('src');
cmp_ok(scalar(grep { /^sequence / } keys %$src_manifest), '>=', 6, 'the manifest lists the sequences');
like($src_manifest->{'table dbops.reaper_log'}, qr/^rows=1 /, 'the manifest has the reaper_log row');

my $dir = PostgreSQL::Test::Utils::tempdir;
my $dump = "$dir/src.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ],
	'pg_dump -Fc of src');
is_deeply(manifest('src'), $src_manifest, 'src did not change while it was dumped');

restore($dump, 'dst', 'dst');
compare_manifest('dst', $src_manifest, 'dst');
works('dst', $src_manifest, 'dst');

# ---------------------------------------------------------------------------
# Hand-off between versions
# ---------------------------------------------------------------------------

if (my $outdir = $ENV{DBOPS_DUMP_OUT})
{
	my $base = "$outdir/dbops-pg$major";
	ok(copy($dump, "$base.dump"), "dump copied to $base.dump");
	write_manifest($src_manifest, "$base.manifest");
	chmod 0644, "$base.dump", "$base.manifest";
	is_deeply(read_manifest("$base.manifest"), $src_manifest,
		"$base.manifest reads back as written");
}

if (my $indir = $ENV{DBOPS_DUMP_IN})
{
	my @dumps;
	if (opendir(my $dh, $indir))
	{
		for my $f (sort readdir $dh)
		{
			push @dumps, [ $1, "$indir/$f" ] if $f =~ /^dbops-pg(\d+)\.dump$/ && $1 < $major;
		}
		closedir $dh;
	}
	fail("DBOPS_DUMP_IN=$indir holds no dbops-pgNN.dump of a version older than $major")
	  unless @dumps;
	for my $d (@dumps)
	{
		my ($v, $file) = @$d;
		my $db = "from_pg$v";
		my $mfile = $file =~ s/\.dump$/.manifest/r;
		ok(-r $mfile, "$db: $mfile is there") or next;
		my $expected = read_manifest($mfile);
		restore($file, $db, $db);
		compare_manifest($db, $expected, $db);
		works($db, $expected, $db);
	}
}

$node->stop;
done_testing();
