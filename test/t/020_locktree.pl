# dbops.lock_tree() and dbops.cancel_blockers() where isolationtester cannot
# go: a real cancel of an active root, a prepared transaction at the top of
# a chain, a wait cycle the deadlock detector has not broken, and a hot
# standby where the startup process holds the lock.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($primary, $standby) = dbops_pair('primary', 'standby', preload => '',
	conf => [ 'max_prepared_transactions = 10', 'max_standby_streaming_delay = -1' ],
	setup => sub {
		$_[0]->safe_psql('postgres', q(
CREATE TABLE lt (id int PRIMARY KEY, v int);
INSERT INTO lt SELECT g, 0 FROM generate_series(1, 10) g;
CREATE TABLE lt_standby (id int);
));
	});

# wait until the session named $app waits for a heavyweight lock
sub wait_lock
{
	my ($node, $app) = @_;
	$node->poll_query_until('postgres',
		"SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = '$app' AND wait_event_type = 'Lock')"
	) or die "$app never waited for a lock";
}

# the tree as "name:depth:block_kind:mode", pids replaced by application_name
my $tree_sql = q(
SELECT string_agg(coalesce(nullif(application_name, ''), CASE WHEN pid = 0 THEN 'prepared' ELSE 'pid' END)
                  || ':' || depth || ':' || coalesce(block_kind, '-') || ':' || mode, ' ' ORDER BY ord)
FROM dbops.lock_tree() WITH ORDINALITY AS t(pid, root_pid, depth, path, blocked_by, block_kind,
       locktype, mode, relation, waiting, xact_age, state, wait_event, usename, datname,
       application_name, client_addr, blocked_count, query, ord));

# ---------------------------------------------------------------------------
# an active root, cancelled for real
# ---------------------------------------------------------------------------
my $root = $primary->background_psql('postgres', on_error_stop => 0);
$root->query_safe("SET application_name = 'root'");
$root->query_safe("BEGIN; LOCK TABLE lt IN SHARE MODE");
my $root_pid = $root->query_safe('SELECT pg_backend_pid()');
$root->query_until(qr/sleeping/, "\\echo sleeping\nSELECT pg_sleep(600);\n");

my $waiter = $primary->background_psql('postgres');
$waiter->query_safe("SET application_name = 'waiter'");
$waiter->query_until(qr/updating/, "\\echo updating\nUPDATE lt SET v = 1 WHERE id = 1;\n");
wait_lock($primary, 'waiter');

is($primary->safe_psql('postgres', $tree_sql),
	'root:0:-:ShareLock waiter:1:hard:RowExclusiveLock',
	'active root and its waiter');
is($primary->safe_psql('postgres',
		"SELECT state || ' ' || wait_event FROM dbops.lock_tree() WHERE pid = $root_pid"),
	'active PgSleep', 'the root is shown active in pg_sleep');

my $dry = $primary->safe_psql('postgres',
	"SELECT pid, action, signalled, detail FROM dbops.cancel_blockers(min_wait => '1 microsecond')");
is($dry, "$root_pid|cancel|f|dry run", 'dry run names the root and signals nothing');

my $done = $primary->safe_psql('postgres',
	"SELECT pid, action, signalled FROM dbops.cancel_blockers(min_wait => '1 microsecond', dry_run => false)");
is($done, "$root_pid|cancel|t", 'cancel_blockers cancels the active root');

# the waiter gets its lock once the root's statement is cancelled
$primary->poll_query_until('postgres',
	"SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'waiter' AND wait_event_type = 'Lock')"
) or die 'waiter still waits';
is($primary->safe_psql('postgres', 'SELECT count(*) FROM dbops.lock_tree()'),
	'0', 'no tree left after the cancel');
like($primary->safe_psql('postgres', "SELECT state FROM pg_stat_activity WHERE pid = $root_pid"),
	qr/idle in transaction \(aborted\)/, 'the root was cancelled, not terminated');
$root->quit;
$waiter->quit;

# ---------------------------------------------------------------------------
# a prepared transaction at the top of a row-lock chain
# ---------------------------------------------------------------------------
$primary->safe_psql('postgres',
	"BEGIN; UPDATE lt SET v = 2 WHERE id = 2; PREPARE TRANSACTION 'tap_prepared'");
my $w1 = $primary->background_psql('postgres');
$w1->query_safe("SET application_name = 'w1'");
$w1->query_until(qr/go/, "\\echo go\nUPDATE lt SET v = 3 WHERE id = 2;\n");
wait_lock($primary, 'w1');
my $w2 = $primary->background_psql('postgres');
$w2->query_safe("SET application_name = 'w2'");
$w2->query_until(qr/go/, "\\echo go\nUPDATE lt SET v = 4 WHERE id = 2;\n");
wait_lock($primary, 'w2');

is($primary->safe_psql('postgres', $tree_sql),
	'prepared:0:-:ExclusiveLock w1:1:hard:ShareLock w2:2:hard:ExclusiveLock',
	'prepared transaction, its waiter, and the waiter behind it on the tuple');
is($primary->safe_psql('postgres',
		"SELECT pid, state, query, usename, datname, blocked_count FROM dbops.lock_tree() WHERE depth = 0"),
	"0|prepared|prepared transaction 'tap_prepared'|postgres|postgres|2",
	'the prepared transaction is recognisable by its gid');
like($primary->safe_psql('postgres', 'SELECT string_agg(t, E\'\n\') FROM dbops.lock_tree_text() t'),
	qr/^prepared \[prepared\] holds ExclusiveLock on transactionid, blocks 2/,
	'lock_tree_text shows the prepared root');
is($primary->safe_psql('postgres',
		"SELECT pid, action, signalled, detail LIKE '%ROLLBACK PREPARED%' FROM dbops.cancel_blockers(min_wait => '1 microsecond', terminate => true, dry_run => false)"),
	'0|skip|f|t', 'a prepared transaction is never signalled; the hint names ROLLBACK PREPARED');
like($primary->safe_psql('postgres',
		"SELECT detail FROM dbops.health() WHERE check_name = 'lock_waits'"),
	qr/^2 sessions waiting for locks; longest wait [0-9.]+ s \(pid \d+\); root blocking the most: prepared transaction/,
	'lock_waits counts the waiters and names the root');
$primary->safe_psql('postgres', "ROLLBACK PREPARED 'tap_prepared'");
$w1->quit;
$w2->quit;

# ---------------------------------------------------------------------------
# a wait cycle the deadlock detector has not broken yet
# ---------------------------------------------------------------------------
my $c1 = $primary->background_psql('postgres', on_error_stop => 0);
my $c2 = $primary->background_psql('postgres', on_error_stop => 0);
$c1->query_safe("SET application_name = 'c1'; SET deadlock_timeout = '1h'");
$c2->query_safe("SET application_name = 'c2'; SET deadlock_timeout = '1h'");
$c1->query_safe("BEGIN; UPDATE lt SET v = 5 WHERE id = 5");
$c2->query_safe("BEGIN; UPDATE lt SET v = 6 WHERE id = 6");
my $c1_pid = $c1->query_safe('SELECT pg_backend_pid()');
$c1->query_until(qr/go/, "\\echo go\nUPDATE lt SET v = 5 WHERE id = 6;\n");
wait_lock($primary, 'c1');
$c2->query_until(qr/go/, "\\echo go\nUPDATE lt SET v = 6 WHERE id = 5;\n");
wait_lock($primary, 'c2');

my $cycle = $primary->safe_psql('postgres',
	"SELECT depth, cardinality(blocked_by), path[1] = root_pid FROM dbops.lock_tree() WHERE application_name IN ('c1', 'c2')");
is($cycle, "0|1|t\n1|1|t", 'a cycle is shown once, its top still blocked');
like($primary->safe_psql('postgres', 'SELECT string_agg(t, E\'\n\') FROM dbops.lock_tree_text() t'),
	qr/\(wait cycle\)/, 'lock_tree_text marks the cycle');
is($primary->safe_psql('postgres',
		"SELECT count(*) FROM dbops.cancel_blockers(min_wait => '1 microsecond')"),
	'0', 'cancel_blockers leaves cycles to the deadlock detector');
$primary->safe_psql('postgres', "SELECT pg_cancel_backend($c1_pid)");
$primary->poll_query_until('postgres', 'SELECT count(*) = 0 FROM dbops.lock_tree()')
  or die 'cycle not broken';
$c1->quit;
$c2->quit;

# ---------------------------------------------------------------------------
# hot standby: a query waits for the lock the startup process replays
# ---------------------------------------------------------------------------
my $locker = $primary->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE lt_standby IN ACCESS EXCLUSIVE MODE');
# the lock's WAL record is not committed yet: wait for it by insert position
wait_for_replay($primary, $standby);

my $reader = $standby->background_psql('postgres');
$reader->query_safe("SET application_name = 'reader'");
$reader->query_until(qr/go/, "\\echo go\nSELECT count(*) FROM lt_standby;\n");
wait_lock($standby, 'reader');

is($standby->safe_psql('postgres', q(
	SELECT a.backend_type || ':' || t.depth || ':' || t.mode || ':' || t.relation
	FROM dbops.lock_tree() t JOIN pg_stat_activity a USING (pid) ORDER BY t.depth)),
	"startup:0:AccessExclusiveLock:lt_standby\nclient backend:1:AccessShareLock:lt_standby",
	'on a standby the startup process is the root');
is($standby->safe_psql('postgres',
		"SELECT action, signalled FROM dbops.cancel_blockers(min_wait => '1 microsecond', dry_run => false)"),
	'skip|f', 'the startup process is never signalled');

# a pg_monitor member reads the tree and the check on the standby
$primary->safe_psql('postgres', 'CREATE ROLE lt_mon LOGIN IN ROLE pg_monitor');
$locker->query_safe('COMMIT');
$primary->wait_for_catchup($standby);
$standby->poll_query_until('postgres', 'SELECT count(*) = 0 FROM dbops.lock_tree()')
  or die 'standby reader still waits';
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM dbops.lock_tree(); SELECT status FROM dbops.health() WHERE check_name = 'lock_waits'",
		extra_params => [ '-U', 'lt_mon' ]),
	"0\nok", 'a pg_monitor member runs lock_tree and lock_waits on the standby');
$reader->quit;
$locker->quit;

$standby->stop;
$primary->stop;
done_testing();
