# dbops.schedule() on a server that preloads pg_cron: the jobs really run
# (one minute boundary: pg_cron 1.4 has no seconds syntax), history rows
# appear, a failing job shows in dbops.jobs and in the cron_failures check,
# jobs for another database are scheduled from the cron database; and a
# server without pg_cron gets the clear error.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('cron', cron => 'postgres', cron_workers => 1, pg_cron => 1);

# the server without pg_cron is started now, checked while the jobs wait
my $plain = dbops_primary('plain', dbops => 0);

$node->safe_psql('postgres', q{
CREATE DATABASE app;
-- a role that schedules its own jobs: may run the health snapshot, not the
-- bloat snapshot, so that job fails
CREATE ROLE ops LOGIN;
GRANT USAGE ON SCHEMA cron TO ops;
GRANT EXECUTE ON FUNCTION dbops.schedule(text, text, text, text, interval, text, interval, interval, interval),
                          dbops.unschedule(text),
                          dbops.health_snapshot(interval) TO ops;
GRANT SELECT, INSERT, UPDATE, DELETE ON dbops.scheduled_jobs TO ops;
CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
});
$node->safe_psql('app', q{
CREATE EXTENSION dbops;
-- a table above bloat_snapshot's min_size (1 MB), half of it deleted
CREATE TABLE orders (id int PRIMARY KEY, pad text);
INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;
DELETE FROM orders WHERE id % 2 = 0;
ANALYZE orders;
});

# from a database other than cron.database_name: the error says where to go
my ($ret, $out, $err) = $node->psql('app', "\\set VERBOSITY verbose\nSELECT dbops.schedule()");
isnt($ret, 0, 'schedule() fails in a database without pg_cron');
like($err, qr/55000: pg_cron keeps its jobs in database "postgres", not in "app"/,
	'the error names the cron database (SQLSTATE 55000)');
like($err, qr/HINT:.*Connect to database postgres.*dbops\.schedule\(database => 'app'\)/,
	'the hint says to schedule from there with database => app');
is($node->safe_psql('app', "SELECT status FROM dbops.health() WHERE check_name = 'cron_failures'"),
	'skipped', 'cron_failures is skipped outside the cron database');

# ops: two jobs at every minute, one of which fails.  schedule() always
# sets up dbops-cron-history (cron_history_keep => NULL is refused); the
# test removes it with pg_cron's own cron.unschedule(), so that only the
# jobs at every minute run here.
$node->safe_psql('postgres', q{
SET ROLE ops;
SELECT dbops.schedule(purge => NULL, health_snapshot => '* * * * *',
                      bloat_snapshot => '* * * * *');
SELECT cron.unschedule('dbops-cron-history');
});
# postgres: the health snapshot of database app, scheduled from here
is($node->safe_psql('postgres', q{
SELECT string_agg(job_name || ' ' || action || ' ' || dbname, ', ' ORDER BY job_name)
FROM dbops.schedule(database => 'app', purge => '* * * * *', health_snapshot => '* * * * *',
                    bloat_snapshot => '* * * * *')}),
	'dbops-bloat-snapshot@app created app, dbops-cron-history created postgres, '
	  . 'dbops-health-snapshot@app created app, dbops-purge@app created app',
	'jobs for another database are named after it; the history clean-up runs in the cron database');
$node->safe_psql('postgres', "SELECT cron.unschedule('dbops-cron-history')");

# the server without pg_cron, meanwhile
$plain->safe_psql('postgres', 'CREATE EXTENSION dbops');
($ret, $out, $err) = $plain->psql('postgres', "\\set VERBOSITY verbose\nSELECT dbops.schedule()");
isnt($ret, 0, 'schedule() fails without pg_cron');
like($err, qr/ERROR:  55000: pg_cron is not available on this server/, 'with SQLSTATE 55000');
like($err, qr/HINT:.*shared_preload_libraries.*CREATE EXTENSION pg_cron/,
	'the hint names shared_preload_libraries and CREATE EXTENSION pg_cron');
($ret, $out, $err) = $plain->psql('postgres', 'SELECT * FROM dbops.jobs');
like($err, qr/pg_cron is not available/, 'dbops.jobs says so too');
is($plain->safe_psql('postgres',
		"SELECT status || ': ' || detail FROM dbops.health() WHERE check_name = 'cron_failures'"),
	'skipped: pg_cron is not loaded (it is not in shared_preload_libraries)',
	'cron_failures is skipped with the reason');
$plain->stop;

# wait for the next minute boundary and the three runs to finish
ok( $node->poll_query_until('postgres', q{
SELECT count(*) FILTER (WHERE last_status IN ('succeeded', 'failed')) = 5 FROM dbops.jobs}),
	'the jobs ran at the minute boundary');

my $jobs = $node->safe_psql('postgres', q{
SELECT job_name, username, database, last_status, failures_24h > 0,
       last_duration IS NOT NULL, next_run > last_start, missed_run IS NULL
FROM dbops.jobs ORDER BY job_name, username});
is($jobs, join("\n",
		'dbops-bloat-snapshot|ops|postgres|failed|t|t|t|t',
		'dbops-bloat-snapshot@app|postgres|app|succeeded|f|t|t|t',
		'dbops-health-snapshot|ops|postgres|succeeded|f|t|t|t',
		'dbops-health-snapshot@app|postgres|app|succeeded|f|t|t|t',
		'dbops-purge@app|postgres|app|succeeded|f|t|t|t'),
	'dbops.jobs: last run, status, duration and next run of each job');
like($node->safe_psql('postgres',
		"SELECT last_message FROM dbops.jobs WHERE job_name = 'dbops-bloat-snapshot'"),
	qr/permission denied for function bloat_snapshot/, 'the failed run keeps its error');

# history rows: one per check, in the database each job ran in
is($node->safe_psql('postgres', q{
SELECT count(*) > 0 AND count(*) = count(DISTINCT check_name) FROM dbops.health_history}),
	't', 'health_history has a snapshot in postgres');
is($node->safe_psql('app', q{
SELECT count(*) > 0 AND count(*) = count(DISTINCT taken_at) * (SELECT count(*) FROM dbops.health())
FROM dbops.health_history}),
	't', 'health_history has a snapshot in app, from the job scheduled in postgres');
is($node->safe_psql('app', q{
SELECT count(*) > 0 AND count(*) = (SELECT count(DISTINCT taken_at) FROM dbops.health_history)
FROM dbops.health_trend('connections')}),
	't', 'health_trend shows it');

is($node->safe_psql('app', q{
SELECT string_agg(relation || ' ' || kind, ', ' ORDER BY relation, kind) FROM dbops.bloat_history}),
	'public.orders table', 'bloat_history has the relation above min_size, in app');

# the failure in health and in the metrics, also for a pg_monitor role
my $health = $node->safe_psql('postgres', q{
SELECT status || ' ' || value || ' ' || detail FROM dbops.health() WHERE check_name = 'cron_failures'});
like($health, qr/^warning 1 1 of 5 pg_cron jobs failing or late: dbops-bloat-snapshot \(job \d+, database postgres\) failed at .*permission denied for function bloat_snapshot/,
	'cron_failures warns and names the failing job');
like($node->safe_psql('postgres', 'SELECT dbops.health_metrics()'),
	qr/^dbops_check_status\{database="postgres",check="cron_failures",status="warning"\} 1$/m,
	'health_metrics reports the warning');
is($node->safe_psql('postgres', q{
SET ROLE watcher;
SELECT (SELECT count(*) FROM dbops.jobs) || ' ' || status
FROM dbops.health() WHERE check_name = 'cron_failures'}),
	'5 warning', 'a pg_monitor role sees every role\'s jobs and the warning');

# unschedule: each role removes its own jobs
is($node->safe_psql('postgres', q{
SET ROLE ops; SELECT string_agg(job_name, ',' ORDER BY job_name) FROM dbops.unschedule()}),
	'dbops-bloat-snapshot,dbops-health-snapshot', 'ops unschedules its jobs');
is($node->safe_psql('postgres', q{
SELECT string_agg(job_name, ',' ORDER BY job_name) FROM dbops.unschedule();
SELECT count(*) FROM cron.job}),
	"dbops-bloat-snapshot\@app,dbops-health-snapshot\@app,dbops-purge\@app\n0", 'postgres unschedules the rest');

$node->stop;
done_testing();
