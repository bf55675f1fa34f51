# On a streaming standby CALL dbops.purge() refuses with SQLSTATE 25006 and a
# hint; the read-only parts (dry run, preview, health check) work there.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'dbops'");
$primary->start;
$primary->safe_psql('postgres', q{
CREATE EXTENSION dbops;
CREATE TABLE ev (id int PRIMARY KEY, created_at timestamptz NOT NULL);
CREATE INDEX ON ev (created_at);
INSERT INTO ev SELECT i, now() - i * interval '1 day' FROM generate_series(1, 100) i;
SELECT dbops.add_retention_policy('ev', 'created_at', '30 days');
});
$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

my ($stdout, $stderr);
my $rc = $standby->psql('postgres', "\\set VERBOSITY verbose\nCALL dbops.purge()",
	stdout => \$stdout, stderr => \$stderr);
isnt($rc, 0, 'purge fails on the standby');
like($stderr, qr/ERROR:\s+25006: cannot purge on a server in recovery/, 'with SQLSTATE 25006');
like($stderr, qr/HINT:\s+Run it on the primary/, 'and a hint');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM ev'), '100', 'nothing deleted');

is($standby->safe_psql('postgres', 'SELECT rows_to_delete FROM dbops.purge_preview()'),
	'71', 'preview works on the standby');
$rc = $standby->psql('postgres', 'CALL dbops.purge(dry_run => true)',
	stdout => \$stdout, stderr => \$stderr);
is($rc, 0, 'dry run works on the standby');
like($stderr, qr/71 rows older than .* would be deleted/, 'dry run reports the rows');
is( $standby->safe_psql('postgres',
		"SELECT status || ': ' || detail FROM dbops.health() WHERE check_name = 'retention'"),
	'warning: ev: behind: rows older than keep + slack',
	'retention health check runs on the standby and sees the policy behind');

# the primary purges, the standby follows
$primary->safe_psql('postgres', 'CALL dbops.purge()');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM ev'), '29', 'purge replicated');
is($standby->safe_psql('postgres', 'SELECT status FROM dbops.purge_runs'), 'done',
	'run recorded and replicated');

$standby->stop;
$primary->stop;
done_testing();
