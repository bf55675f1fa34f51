# dbops.health() on a freshly started cluster with dbops preloaded
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('primary');

my $status = $node->safe_psql('postgres',
	"SELECT status FROM dbops.health() WHERE check_name = 'connections'");
is($status, 'ok', 'connections check is ok on an idle cluster');

$node->stop;
done_testing();
