# A real psql migration script (the idiom of doc/ledger.md) run with
# psql -v ON_ERROR_STOP=1 -f: exits 0 every time and applies once; an edited
# script is refused; two copies started at once apply once.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = dbops_primary('ledger_psql', preload => '');

my $dir = PostgreSQL::Test::Utils::tempdir;
my $psql = $node->installed_command('psql');
my $connstr = $node->connstr('postgres');

sub script
{
	my ($version, $ddl) = @_;
	return <<"SQL";
-- $version: the dbops psql idiom
\\if :{?checksum}
\\else
\\set checksum ''
\\endif
BEGIN;
SELECT dbops.migration_pending('$version', :'checksum') AS pending \\gset
\\if :pending
SELECT dbops.migration_begin('$version', 'create accounts', :'checksum');
$ddl
\\else
\\echo $version is already applied
\\endif
COMMIT;
SQL
}

# doc/ledger.md's way of computing a script's checksum
sub checksum
{
	my ($file) = @_;
	my $content = slurp_file($file);
	chomp $content;
	my ($out, $err);
	IPC::Run::run([ $psql, '-XAtq', '-d', $connstr, '-v', "s=$content" ],
		'<', \"SELECT dbops.migration_checksum(:'s');\n", '>', \$out, '2>', \$err)
	  or die "checksum failed: $err";
	chomp $out;
	return $out;
}

sub run_script
{
	my ($file, $checksum) = @_;
	my ($out, $err);
	my @cmd = ($psql, '-X', '-v', 'ON_ERROR_STOP=1', '-d', $connstr);
	push @cmd, '-v', "checksum=$checksum" if defined $checksum;
	push @cmd, '-f', $file;
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

my $file = "$dir/0001_accounts.sql";
append_to_file($file, script('0001',
	"CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);\nCREATE INDEX accounts_email ON accounts (email);\nINSERT INTO accounts VALUES (1, 'a\@example.com');"));
my $sum = checksum($file);
like($sum, qr/^[0-9a-f]{64}$/, 'checksum computed the README way');

my ($rc, $out, $err) = run_script($file, $sum);
is($rc, 0, 'first run exits 0') or diag($err);
($rc, $out, $err) = run_script($file, $sum);
is($rc, 0, 'second run exits 0') or diag($err);
like($out, qr/0001 is already applied/, 'second run says it skipped');
($rc, $out, $err) = run_script($file);
is($rc, 0, 'a run without -v checksum exits 0 too') or diag($err);

is($node->safe_psql('postgres', 'SELECT count(*) FROM accounts'), '1', 'script body ran once');
is( $node->safe_psql('postgres',
		"SELECT status, checksum = '$sum', finished_at IS NOT NULL FROM dbops.migrations WHERE version = '0001'"),
	'applied|t|t', 'ledger row with the script checksum, finished at commit');
is($node->safe_psql('postgres', "SELECT count(*) FROM dbops.migration_events WHERE event = 'apply'"),
	'1', 'one apply event');
is( $node->safe_psql('postgres',
		"SELECT string_agg(object_identity, ',' ORDER BY object_id) FROM dbops.migration_objects WHERE version = '0001'"),
	'public.accounts,public.accounts_pkey,public.accounts_email', 'the DDL was captured');

# the script is edited after it was applied: refused, nothing changes
my $edited = "$dir/0001_accounts_edited.sql";
append_to_file($edited, script('0001',
	"CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, name text);"));
($rc, $out, $err) = run_script($edited, checksum($edited));
is($rc, 3, 'edited script stops psql (ON_ERROR_STOP)');
like($err, qr/checksum drift: migration 0001/, 'with the drift error');
is( $node->safe_psql('postgres',
		"SELECT sqlstate FROM dbops.migration_events WHERE event = 'failed' AND version = '0001'"),
	'DB001', 'the drift is a failed event');

# a script whose own DDL fails after migration_begin(): psql stops, nothing
# is applied, and the failure is recorded after the rollback
my $bad = "$dir/0003_bad.sql";
append_to_file($bad, script('0003', "CREATE TABLE bad_t (id int);\nALTER TABLE no_such_table ADD COLUMN x int;"));
($rc, $out, $err) = run_script($bad);
is($rc, 3, 'failing script stops psql');
is($node->safe_psql('postgres', "SELECT to_regclass('bad_t') IS NULL AND NOT EXISTS (SELECT FROM dbops.migrations WHERE version = '0003')"),
	't', 'nothing of the failed script stays');
ok( $node->poll_query_until('postgres',
		"SELECT sqlstate || ' ' || message FROM dbops.migration_events WHERE version = '0003' AND event = 'failed'",
		'42P01 relation "no_such_table" does not exist'),
	'the failure of the script is a failed event with SQLSTATE and message');
is($node->safe_psql('postgres', "SELECT status FROM dbops.health() WHERE check_name = 'migrations'"),
	'warning', 'the migrations health check reports it');

# two copies of a new script at once: both exit 0, one applies
my $slow = "$dir/0002_slow.sql";
append_to_file($slow, script('0002', "CREATE TABLE slow_t (id int);\nINSERT INTO slow_t VALUES (1);\nSELECT pg_sleep(2);"));
my $slowsum = checksum($slow);
my @h;
my ($o1, $e1, $o2, $e2);
for my $io ([ \$o1, \$e1 ], [ \$o2, \$e2 ])
{
	push @h,
	  IPC::Run::start(
		[ $psql, '-X', '-v', 'ON_ERROR_STOP=1', '-v', "checksum=$slowsum", '-d', $connstr, '-f', $slow ],
		'>', $io->[0], '2>', $io->[1]);
}
my @rcs;
for my $h (@h)
{
	$h->finish;
	push @rcs, $h->result(0);
}
is_deeply(\@rcs, [ 0, 0 ], 'both concurrent runs exit 0') or diag("$e1\n$e2");
is($node->safe_psql('postgres', 'SELECT count(*) FROM slow_t'), '1', 'the body ran once');
is(scalar(grep { defined $_ && /0002 is already applied/ } ($o1, $o2)), 1, 'one of them skipped');

# pg_dump carries the ledger (extension configuration tables)
my ($dump, $dump_err);
IPC::Run::run([ $node->installed_command('pg_dump'), '-d', $connstr ], '>', \$dump, '2>', \$dump_err)
  or die "pg_dump failed: $dump_err";
like($dump, qr/^COPY dbops\.migrations \(.*\n0001\t/m, 'pg_dump includes the ledger rows');
like($dump, qr/^COPY dbops\.migration_events /m, 'pg_dump includes the events');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
my ($rout, $rerr);
IPC::Run::run([ $psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored') ],
	'<', \$dump, '>', \$rout, '2>', \$rerr);
is($? >> 8, 0, 'the dump restores') or diag($rerr);
is( $node->safe_psql('restored',
		"SELECT string_agg(version || ':' || status, ',' ORDER BY version) FROM dbops.migrations"),
	$node->safe_psql('postgres',
		"SELECT string_agg(version || ':' || status, ',' ORDER BY version) FROM dbops.migrations"),
	'the restored ledger equals the original');
is($node->safe_psql('restored', "SELECT dbops.migration_pending('0001')"), 'f',
	'0001 is not pending in the restored database');

$node->stop;
done_testing();
