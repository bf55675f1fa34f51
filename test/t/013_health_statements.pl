# dbops.top_queries() and the slow_queries check on a server that preloads
# pg_stat_statements, installed in a schema whose name needs quoting:
#
#  - top_queries orders by total and by mean time, and the shares of the
#    statements sum to 100 %; I/O and planning times are read where
#    tracked;
#  - a pg_monitor member sees every query text; a role granted only EXECUTE
#    sees its own texts and "<insufficient privilege>" for others';
#  - slow_queries grades the slowest mean and names it by queryid, leaving
#    out a statement under the threshold;
#  - on a hot standby both work, over the statements run there.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = dbops_primary('statements', allows_streaming => 1,
	preload => 'dbops,pg_stat_statements',
	conf => [ 'track_io_timing = on', 'pg_stat_statements.track_planning = on' ]);
$primary->safe_psql('postgres', q{
	CREATE SCHEMA "stat ements";
	CREATE EXTENSION pg_stat_statements SCHEMA "stat ements";
	CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
	CREATE ROLE app LOGIN;
	CREATE ROLE plain LOGIN;
	GRANT EXECUTE ON FUNCTION dbops.top_queries(text, integer, boolean) TO plain;
	UPDATE dbops.health_thresholds SET warning = 50, critical = 100000
	 WHERE check_name = 'slow_queries';
});

# a schema the caller may not use: told so, with the grant; the check is
# skipped
my ($ok, $out, $err) = $primary->psql('postgres', 'SET ROLE monitor; SELECT * FROM dbops.top_queries()');
like($err, qr/permission denied for schema stat ements/, 'top_queries needs USAGE on the schema of pg_stat_statements');
is( $primary->safe_psql('postgres',
		q{SET ROLE monitor; SELECT status FROM dbops.health() WHERE check_name = 'slow_queries'}),
	'skipped', 'slow_queries is skipped without USAGE on that schema');
$primary->safe_psql('postgres', 'GRANT USAGE ON SCHEMA "stat ements" TO PUBLIC');

# a database without pg_stat_statements
$primary->safe_psql('postgres', 'CREATE DATABASE other');
$primary->safe_psql('other', 'CREATE EXTENSION dbops');

my $standby = dbops_standby($primary, 'statements_standby');

# run(NODE, ROLE, SQL, N): SQL N times as ROLE, each a statement of its own
sub run
{
	my ($node, $role, $sql, $n) = @_;
	$node->safe_psql('postgres', join(";\n", "SET ROLE $role", ($sql) x $n));
	return;
}

# query_as(NODE, ROLE, SQL): one query as ROLE
sub query_as
{
	my ($node, $role, $sql) = @_;
	return $node->safe_psql('postgres', "SET ROLE $role; $sql");
}

$primary->safe_psql('postgres', 'SELECT "stat ements".pg_stat_statements_reset()');
# slow: 10 calls of 150 ms (1.5 s in all); fast: 200 calls of 10 ms (2 s
# and more in all); under: 10 calls of 10 ms.  Each of its own shape:
# pg_stat_statements does not tell statements apart by their column names.
run($primary, 'app', 'SELECT pg_sleep(0.15)', 10);
run($primary, 'app', 'SELECT 1 FROM pg_sleep(0.01)', 200);
$primary->safe_psql('other', 'SELECT 7 AS elsewhere');
run($primary, 'app', 'SELECT pg_sleep(0.01), 2', 10);
run($primary, 'plain', 'SELECT 42 AS mine', 1);

# ---------------------------------------------------------------------------
# top_queries: orders, shares, columns
# ---------------------------------------------------------------------------
like(query_as($primary, 'monitor', q{SELECT query FROM dbops.top_queries('total_time', 1)}),
	qr/^SELECT \$1 FROM pg_sleep\(\$2\)$/, 'by total time, the many short calls come first');
like(query_as($primary, 'monitor', q{SELECT query FROM dbops.top_queries('mean_time', 1)}),
	qr/^SELECT pg_sleep\(\$1\)$/, 'by mean time, the slow statement comes first');
is(query_as($primary, 'monitor', q{SELECT query FROM dbops.top_queries('calls', 1)}),
	'SELECT $1 FROM pg_sleep($2)', 'by calls, the statement called most comes first');
for my $o (qw(total_time mean_time calls rows))
{
	my $col = { total_time => 'total_exec_time_ms', mean_time => 'mean_exec_time_ms',
		calls => 'calls', rows => 'rows' }->{$o};
	is( query_as($primary, 'monitor',
			qq{SELECT coalesce(bool_and(prev >= $col), false) FROM (SELECT $col, lag($col) OVER (ORDER BY ordinality) AS prev
			     FROM dbops.top_queries('$o', 1000) WITH ORDINALITY) s
			  WHERE prev IS NOT NULL}),
		't', "order_by => '$o': every row is ordered by $col, highest first");
}
is(query_as($primary, 'monitor', q{SELECT count(*) FROM dbops.top_queries('total_time', 3)}),
	'3', 'the limit caps the rows');
my $sum = query_as($primary, 'monitor', q{SELECT sum(share_pct) FROM dbops.top_queries('total_time', 100000)});
cmp_ok(abs($sum - 100), '<', 0.01, "the shares of all statements sum to 100 % ($sum)");
is( query_as($primary, 'monitor',
		q{SELECT username || ' ' || datname || ' ' || calls || ' ' || (share_pct > 20) || ' '
		         || (blk_read_time_ms IS NOT NULL) || ' ' || (total_plan_time_ms IS NOT NULL)
		         || ' ' || (wal_bytes IS NOT NULL) || ' ' || (mean_exec_time_ms >= 140)
		    FROM dbops.top_queries('mean_time', 1)}),
	'app postgres 10 true true true true true',
	'a row names its role and database, its calls and share; tracked timings are not NULL');
is( query_as($primary, 'monitor',
		q{SELECT (SELECT count(*) FROM dbops.top_queries('total_time', 1000, all_databases => true)
		           WHERE datname = 'other' AND query = 'SELECT $1 AS elsewhere')
		      || ' ' || (SELECT count(*) FROM dbops.top_queries('total_time', 1000)
		                  WHERE datname IS DISTINCT FROM 'postgres')}),
	'1 0', 'all_databases => true adds the statements of other databases');

# ---------------------------------------------------------------------------
# visibility of query texts: pg_stat_statements' own rules
# ---------------------------------------------------------------------------
is( query_as($primary, 'monitor',
		q{SELECT count(*) FROM dbops.top_queries('total_time', 1000)
		   WHERE query ~ '^SELECT (pg_sleep|\$1 AS mine|\$1 FROM pg_sleep)' AND queryid IS NOT NULL}),
	'4', 'a pg_monitor member sees the texts and queryids of every role');
is( query_as($primary, 'plain',
		q{SELECT string_agg(DISTINCT coalesce(queryid::text, 'hidden') || ' ' || query, ',')
		    FROM dbops.top_queries('total_time', 1000) WHERE username = 'app'}),
	'hidden <insufficient privilege>',
	'a role granted only EXECUTE sees no text or queryid of another role');
is(query_as($primary, 'plain', q{SELECT query FROM dbops.top_queries('total_time', 1000) WHERE username = 'plain' AND query LIKE '%mine%'}),
	'SELECT $1 AS mine', 'it sees its own texts');
($ok, $out, $err) = $primary->psql('postgres', 'SET ROLE app; SELECT * FROM dbops.top_queries()');
like($err, qr/permission denied for function top_queries/, 'a role without EXECUTE may not run it');

# ---------------------------------------------------------------------------
# slow_queries
# ---------------------------------------------------------------------------
my $slow_id = query_as($primary, 'monitor',
	q{SELECT queryid FROM dbops.top_queries('mean_time', 1)});
my ($fast_id, $under_id) = split /\n/, query_as($primary, 'monitor',
	q{SELECT queryid FROM dbops.top_queries('total_time', 1000)
	   WHERE query IN ('SELECT $1 FROM pg_sleep($2)', 'SELECT pg_sleep($1), $2') ORDER BY query});
my ($status, $value, $detail, $hint) = split /\|/, query_as($primary, 'monitor',
	q{SELECT status || '|' || value || '|' || detail || '|' || hint FROM dbops.health()
	   WHERE check_name = 'slow_queries'}), 4;
is($status, 'warning', 'slow_queries: a mean over the warning threshold is graded');
cmp_ok($value, '>=', 140, "slow_queries: its value is the slowest mean in ms ($value)");
like($detail,
	qr/^1 statement\(s\) of at least 10 calls with a mean over 50 ms; by total time: queryid $slow_id \(mean [\d.]+ ms over 10 calls, total [\d.]+s\)$/,
	'slow_queries names the statement by its queryid, with mean, calls and total');
unlike($detail, qr/$fast_id|$under_id/, 'statements under the threshold are not named');
like($hint, qr/dbops\.top_queries\('mean_time'\)/, 'the hint points to top_queries');

$primary->safe_psql('postgres', q{UPDATE dbops.health_thresholds SET warning = 5, critical = 100
	WHERE check_name = 'slow_queries'});
($status, $value, $detail) = split /\|/, query_as($primary, 'monitor',
	q{SELECT status || '|' || value || '|' || detail FROM dbops.health() WHERE check_name = 'slow_queries'}), 3;
is($status, 'critical', 'slow_queries: over the critical threshold');
like($detail, qr/^3 statement\(s\) .* by total time: queryid $fast_id .*, queryid $slow_id .*, queryid $under_id /,
	'slow_queries names the statements over the threshold by total time, highest first');

# ---------------------------------------------------------------------------
# hot standby
# ---------------------------------------------------------------------------
wait_for_replay($primary, $standby);
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
run($standby, 'app', 'SELECT pg_sleep(0.15)::text', 10);
like(query_as($standby, 'monitor', q{SELECT query FROM dbops.top_queries('mean_time', 1)}),
	qr/^SELECT pg_sleep\(\$1\)::text$/, 'on a standby, top_queries reads the statements run there');
my $standby_id = query_as($standby, 'monitor',
	q{SELECT queryid FROM dbops.top_queries('mean_time', 1)});
($status, $value, $detail) = split /\|/, query_as($standby, 'monitor',
	q{SELECT status || '|' || value || '|' || detail FROM dbops.health() WHERE check_name = 'slow_queries'}), 3;
is($status, 'critical', 'on a standby, slow_queries grades (with the primary\'s thresholds)');
like($detail, qr/queryid $standby_id /, 'on a standby, slow_queries names the statement run there');

# without the extension in a database: ok with a note, and top_queries' error
is( $primary->safe_psql('other',
		q{SELECT status || ' ' || detail FROM dbops.health() WHERE check_name = 'slow_queries'}),
	'ok pg_stat_statements is not installed in this database: nothing to check',
	'slow_queries is ok with a note in a database without the extension');
($ok, $out, $err) = $primary->psql('other', '\set VERBOSITY verbose
SELECT * FROM dbops.top_queries()');
like($err, qr/55000: pg_stat_statements is not installed.*HINT:.*shared_preload_libraries.*CREATE EXTENSION pg_stat_statements/s,
	'top_queries fails with 55000 and a hint there');

done_testing();
