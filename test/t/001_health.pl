# dbops.health() on a freshly started cluster with dbops preloaded
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'dbops'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION dbops');

my $status = $node->safe_psql('postgres',
	"SELECT status FROM dbops.health() WHERE check_name = 'connections'");
is($status, 'ok', 'connections check is ok on an idle cluster');

$node->stop;
done_testing();
