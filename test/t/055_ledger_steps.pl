# Migration steps outside a transaction block, the psql way: a script
# begins the step (dbops.migration_step_begin), runs CREATE INDEX
# CONCURRENTLY on its own, and finishes it (dbops.migration_step_finish),
# which checks the index is valid.  A build that fails leaves an invalid
# index and an unfinished step: the migrations health check reports both,
# and the rerun of the same script drops the index and builds it again.  A
# session killed in the middle of its build is found the same way.  The
# ledger records the version applied once.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('ledger_steps', preload => '');
$node->safe_psql('postgres', q{
CREATE TABLE orders (id int, customer int);
INSERT INTO orders SELECT g, g % 100 FROM generate_series(1, 20000) g;
INSERT INTO orders VALUES (7, 7);
});

# the idiom of doc/ledger.md
my $script = $node->basedir . '/0020.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
\set ON_ERROR_STOP on
SELECT dbops.migration_step_begin('0020', 'orders by id', index_name => 'orders_id_key') = 'open' AS run \gset
\if :run
CREATE UNIQUE INDEX CONCURRENTLY orders_id_key ON orders (id);
SELECT dbops.migration_step_finish('0020');
\endif
});

sub run_script
{
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', undef, extra_params => [ '-f', $script ],
		stdout => \$out, stderr => \$err, on_error_stop => 0);
	return ($rc, $out, $err);
}

sub migrations_check
{
	return $node->safe_psql('postgres', q{
SELECT status || '|' || value || '|' || detail FROM dbops.health() WHERE check_name = 'migrations'});
}

sub sql { return $node->safe_psql('postgres', shift); }

# a build that fails: the duplicate key
my ($rc, $out, $err) = run_script();
isnt($rc, 0, 'the script stops at the failed build');
like($err, qr/could not create unique index "orders_id_key"/, 'the build fails on the duplicate');
is(sql(q{SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = 'orders_id_key'::regclass}),
	'f', 'and leaves an invalid index');
is(sql(q{SELECT count(*) FROM dbops.migration_steps WHERE version = '0020'}), '1',
	'the step is recorded as begun');
is(sql(q{SELECT count(*) FROM dbops.migrations WHERE version = '0020'}), '0', 'not applied');
like(migrations_check(), qr/^warning\|1\|0020 step not finished, invalid index orders_id_key$/,
	'the migrations check reports the unfinished step and its invalid index');
like(sql(q{SELECT hint FROM dbops.health() WHERE check_name = 'migrations'}),
	qr/run the step again/, 'and says to run it again');
like(sql(q{SELECT detail FROM dbops.health() WHERE check_name = 'invalid_indexes'}),
	qr/orders_id_key/, 'invalid_indexes sees the index too');

# the data is fixed; the same script again drops the index and builds it
sql(q{DELETE FROM orders WHERE ctid = (SELECT max(ctid) FROM orders WHERE id = 7)});
($rc, $out, $err) = run_script();
is($rc, 0, 'the rerun succeeds');
like($err, qr/NOTICE:  dropping the invalid index public\.orders_id_key, left by a build that did not finish/,
	'it drops the invalid index first');
is(sql(q{SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = 'orders_id_key'::regclass}),
	't', 'the index is valid');
is(sql(q{SELECT status FROM dbops.migrations WHERE version = '0020'}), 'applied', 'the version is applied');
is(sql(q{SELECT count(*) FROM dbops.migration_steps}), '0', 'no step left open');
is(sql(q{SELECT string_agg(event || ':' || operation || ':' || coalesce(sqlstate, ''), ',' ORDER BY event_id)
         FROM dbops.migration_events WHERE version = '0020'}),
	'apply:migration_step:', 'one apply event (the failed build was not dbops\' to record)');
like(migrations_check(), qr/^ok\|0\|/, 'the migrations check is clean');

# a third run skips: the statement is not run again
($rc, $out, $err) = run_script();
is($rc, 0, 'a third run succeeds');
unlike($err, qr/CREATE INDEX|already exists/, 'without running the build');
is(sql(q{SELECT count(*) FROM dbops.migration_events WHERE version = '0020' AND event = 'skip'}),
	'1', 'and records a skip');

# a session killed in the middle of its build: an open transaction makes
# CREATE INDEX CONCURRENTLY wait for it, and the build is ended there
my $holder = $node->background_psql('postgres', on_error_stop => 0);
$holder->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM orders;');
my $builder = $node->background_psql('postgres', on_error_stop => 0);
my $bpid = $builder->query_safe('SELECT pg_backend_pid()');
is($builder->query_safe(q{SELECT dbops.migration_step_begin('0021', 'orders by customer', index_name => 'orders_customer')}),
	'open', 'a second step begins');
$builder->query_until(qr/started/, q{
\echo started
CREATE INDEX CONCURRENTLY orders_customer ON orders (customer);
});
ok( $node->poll_query_until('postgres', qq{
SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $bpid}),
	'its build waits for the open transaction');

# meanwhile, another runner of the same version is refused
my ($o2, $e2) = ('', '');
$node->psql('postgres', q{SELECT dbops.migration_step_begin('0021', 'orders by customer', index_name => 'orders_customer')},
	stdout => \$o2, stderr => \$e2, on_error_stop => 0);
like($e2, qr/ERROR:  migration 0021 has a step open in another session \(pid $bpid\)/,
	'a second runner of the step is refused while the first is alive');
$node->psql('postgres', q{SELECT dbops.migration_step_finish('0021')},
	stdout => \$o2, stderr => \$e2, on_error_stop => 0);
like($e2, qr/ERROR:  migration 0021 has a step open in another session/,
	'and so is a finish from another session');
is(sql(q{SELECT status FROM dbops.health() WHERE check_name = 'migrations'}), 'ok',
	'a step whose session is alive is not reported');

sql("SELECT pg_terminate_backend($bpid)");
ok( $node->poll_query_until('postgres', qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $bpid}),
	'the builder is gone');
$holder->query_safe('COMMIT');
is(sql(q{SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = 'orders_customer'::regclass}),
	'f', 'its index is left invalid');
like(migrations_check(), qr/^warning\|1\|0021 step not finished, invalid index orders_customer$/,
	'the migrations check reports it');

# the rerun from another session takes the step over
my ($o3, $e3) = ('', '');
$node->psql('postgres', q{
\set ON_ERROR_STOP on
SELECT dbops.migration_step_begin('0021', 'orders by customer', index_name => 'orders_customer') = 'open' AS run \gset
\if :run
CREATE INDEX CONCURRENTLY orders_customer ON orders (customer);
SELECT dbops.migration_step_finish('0021');
\endif
}, stdout => \$o3, stderr => \$e3, on_error_stop => 0);
like($o3, qr/applied/, 'the rerun builds it and finishes the step');
is(sql(q{SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = 'orders_customer'::regclass}),
	't', 'the index is valid');
like(migrations_check(), qr/^ok\|0\|/, 'the migrations check is clean again');

# the finish checks what it can
sql(q{SELECT dbops.migration_step_begin('0022', 'forgot the statement', index_name => 'orders_never')});
$node->psql('postgres', q{SELECT dbops.migration_step_finish('0022')},
	stdout => \$o2, stderr => \$e2, on_error_stop => 0);
like($e2, qr/ERROR:  index "orders_never" of migration 0022 does not exist/,
	'a finish whose index was not built fails');
is(sql(q{SELECT sqlstate FROM dbops.migration_events WHERE version = '0022' AND event = 'failed'}),
	'42704', 'and is recorded as a failed attempt');
$node->psql('postgres', q{SELECT dbops.migration_step_finish('0099')},
	stdout => \$o2, stderr => \$e2, on_error_stop => 0);
like($e2, qr/ERROR:  migration 0099 has no step open/, 'a finish with no step begun is refused');

# an index that is already there and valid: nothing to run
sql(q{CREATE INDEX orders_customer_id ON orders (customer, id)});
is(sql(q{SELECT dbops.migration_step_begin('0023', 'built by hand', index_name => 'orders_customer_id', allow_out_of_order => true)}),
	'applied', 'a step whose index is already valid is recorded applied');
like(sql(q{SELECT message FROM dbops.migration_events WHERE version = '0023' AND event = 'apply'}),
	qr/already there and valid/, 'and says why');

# a step whose session ended, then applied another way: its rerun skips
# and clears the step
sql(q{SELECT dbops.migration_step_begin('0030', 'left open', allow_out_of_order => true)});
like(migrations_check(), qr/0030 step not finished/, 'a step left open by an ended session is reported');
sql(q{SELECT dbops.migrate('0030', 'applied by hand', 'SELECT 1', allow_out_of_order => true)});
is(sql(q{SELECT dbops.migration_step_begin('0030', 'left open', allow_out_of_order => true)}),
	'skipped', 'the rerun of a step applied meanwhile skips');
is(sql(q{SELECT count(*) FROM dbops.migration_steps WHERE version = '0030'}), '0',
	'and clears the step row');
unlike(migrations_check(), qr/0030/, 'which the migrations check no longer reports');

# not inside a transaction block; not for a relation that is not an index
$node->psql('postgres', q{BEGIN; SELECT dbops.migration_step_begin('0024', 'x');},
	stdout => \$o2, stderr => \$e2, on_error_stop => 0);
like($e2, qr/ERROR:  dbops.migration_step_begin\(\) cannot run inside a transaction block/,
	'refused inside a transaction block');
$node->psql('postgres', q{\set VERBOSITY verbose
SELECT dbops.migration_step_begin('0024', 'x', index_name => 'orders', allow_out_of_order => true)},
	stdout => \$o2, stderr => \$e2, on_error_stop => 0);
like($e2, qr/ERROR:  42809: "orders" is not an index/, 'index_name must name an index');

# the step functions are not PUBLIC's; a deploying role needs them and
# the grants on dbops.migration_steps
sql(q{CREATE ROLE nobody LOGIN; GRANT USAGE ON SCHEMA dbops TO nobody});
$node->psql('postgres', q{SELECT dbops.migration_step_begin('0025', 'no grant')},
	stdout => \$o2, stderr => \$e2, on_error_stop => 0, extra_params => [ '-U', 'nobody' ]);
like($e2, qr/permission denied for function migration_step_begin/,
	'a role without the grant cannot begin a step');
sql(q{
CREATE ROLE deployer LOGIN;
GRANT USAGE ON SCHEMA dbops TO deployer;
GRANT EXECUTE ON FUNCTION dbops.migration_step_begin(text, text, text, text[], boolean, text),
    dbops.migration_step_finish(text) TO deployer;
GRANT SELECT, INSERT, UPDATE ON dbops.migrations TO deployer;
GRANT SELECT, INSERT ON dbops.migration_events TO deployer;
GRANT USAGE ON SEQUENCE dbops.migration_events_event_id_seq TO deployer;
GRANT CREATE ON SCHEMA public TO deployer;
});
$node->psql('postgres', q{SELECT dbops.migration_step_begin('0025', 'no grant')},
	stdout => \$o2, stderr => \$e2, on_error_stop => 0, extra_params => [ '-U', 'deployer' ]);
like($e2, qr/dbops.migration_step_begin\(\) needs SELECT on dbops.migration_steps.*\n.*SELECT, INSERT, UPDATE, DELETE on dbops.migration_steps/,
	'without them: which grant is missing');
sql(q{GRANT SELECT, INSERT, UPDATE, DELETE ON dbops.migration_steps TO deployer});
$node->psql('postgres', q{
CREATE TABLE deployer_t (id int);
SELECT dbops.migration_step_begin('0025', 'with the grants', index_name => 'deployer_t_id', allow_out_of_order => true);
CREATE INDEX CONCURRENTLY deployer_t_id ON deployer_t (id);
SELECT dbops.migration_step_finish('0025');
}, stdout => \$o2, stderr => \$e2, on_error_stop => 0, extra_params => [ '-U', 'deployer' ]);
like($o2, qr/open\napplied/, 'with them: the deploying role runs a step') or diag($e2);

$holder->quit;
$node->stop;
done_testing();
