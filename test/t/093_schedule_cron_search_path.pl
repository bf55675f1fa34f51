# pg_cron runs a job in a new session of the job's owner, which gets the
# search_path of its database: the owner of the database (here also the
# cron database) puts its schema first, with count(*), now(), the
# timestamptz operators and domains named after the types dbops casts to,
# each trying to make the owner superuser.  A superuser schedules the dbops
# jobs there; they run at the next minute as that superuser and must run
# none of the traps.  Jobs scheduled by 1.0 keep their commands until
# schedule() is called again after the update, which rewrites them.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# pg_cron's database does not exist yet: app is made below
my $node = dbops_primary('cron_search_path', cron => 'app', cron_workers => 1, dbops => 0);

$node->safe_psql('postgres', q{
CREATE ROLE sec_led_owner LOGIN;
CREATE DATABASE app OWNER sec_led_owner;
});
$node->safe_psql('app', q{
CREATE EXTENSION pg_cron;
CREATE EXTENSION dbops VERSION '1.0';
-- a table above bloat_snapshot's min_size (1 MB)
CREATE TABLE public.orders (id int PRIMARY KEY, pad text);
INSERT INTO public.orders SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;
ANALYZE public.orders;
});

# the owner's traps
$node->safe_psql('app', q{
SET ROLE sec_led_owner;
CREATE SCHEMA evil;
CREATE TABLE evil.trap_log (trap text, run_as name, is_super boolean, query text);
GRANT USAGE ON SCHEMA evil TO PUBLIC;
GRANT INSERT ON evil.trap_log TO PUBLIC;
CREATE FUNCTION evil.trap(what pg_catalog.text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
DECLARE
    super boolean := (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user);
BEGIN
    INSERT INTO evil.trap_log VALUES (what, current_user, super, left(current_query(), 200));
    IF super THEN
        EXECUTE 'ALTER ROLE sec_led_owner SUPERUSER';
    END IF;
    RETURN true;
END;
$$;
CREATE FUNCTION evil.agg_count(s bigint) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN evil.trap('count(*)') THEN s OPERATOR(pg_catalog.+) 1 END $$;
CREATE AGGREGATE evil.count(*) (sfunc = evil.agg_count, stype = bigint, initcond = '0');
CREATE FUNCTION evil.now() RETURNS pg_catalog.timestamptz LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN evil.trap('now()') THEN pg_catalog.now() END $$;
CREATE FUNCTION evil.ts_lt(a pg_catalog.timestamptz, b pg_catalog.timestamptz) RETURNS boolean
LANGUAGE sql VOLATILE AS $$ SELECT evil.trap('<(timestamptz,timestamptz)') AND a OPERATOR(pg_catalog.<) b $$;
CREATE OPERATOR evil.< (LEFTARG = pg_catalog.timestamptz, RIGHTARG = pg_catalog.timestamptz,
                        FUNCTION = evil.ts_lt);
CREATE FUNCTION evil.ts_mi(a pg_catalog.timestamptz, b interval) RETURNS pg_catalog.timestamptz
LANGUAGE sql VOLATILE AS $$ SELECT CASE WHEN evil.trap('-(timestamptz,interval)') THEN a OPERATOR(pg_catalog.-) b END $$;
CREATE OPERATOR evil.- (LEFTARG = pg_catalog.timestamptz, RIGHTARG = interval, FUNCTION = evil.ts_mi);
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'name', 'regclass', 'timestamptz'] LOOP
        EXECUTE format('CREATE DOMAIN evil.%I AS pg_catalog.%I CHECK (evil.trap(%L))',
                       t, t, 'domain ' || t);
    END LOOP;
END;
$$;
ALTER DATABASE app SET search_path = evil, pg_catalog, public;
});
ok($node->safe_psql('app', q{SELECT count(*) FROM (VALUES (1)) v;
SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM evil.trap_log}) eq "1\nt",
	'the traps run in a session of app');
$node->safe_psql('app', 'ALTER ROLE sec_led_owner NOSUPERUSER; TRUNCATE evil.trap_log');

# Everything the test itself asks in app is qualified: its sessions get the
# owner's search_path too.
my %jobs = (
	health_snapshot => q{'* * * * *'},
	bloat_snapshot => q{'* * * * *'},
	reap => q{'* * * * *'},
	reap_idle_for => q{'1 second'},
	purge => 'NULL');
my $args = join(', ', map { "$_ => $jobs{$_}" } sort keys %jobs);

# scheduled with 1.0, updated: schedule() again rewrites the commands
$node->safe_psql('app', "SELECT pg_catalog.count(*) FROM dbops.schedule($args)");
$node->safe_psql('app', 'ALTER EXTENSION dbops UPDATE');
is($node->safe_psql('app', qq{
SELECT pg_catalog.string_agg(s.job_name OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) s.action,
                             ', ' ORDER BY s.job_name)
FROM dbops.schedule($args) s}),
	'dbops-bloat-snapshot updated, dbops-cron-history updated, dbops-health-snapshot updated, dbops-reap updated',
	'after the update schedule() rewrites the commands of the 1.0 jobs');
unlike($node->safe_psql('app', 'SELECT pg_catalog.string_agg(command, E\'\n\') FROM cron.job'),
	qr/(?<!pg_catalog\.)\b(count|now)\(|[^)] < /, 'the commands name their functions and operators by schema');

# the history clean-up every minute too, with a run old enough to go
$node->safe_psql('app', q{
SELECT cron.alter_job(j.jobid, schedule => '* * * * *')
FROM cron.job j WHERE j.jobname OPERATOR(pg_catalog.=) 'dbops-cron-history';
INSERT INTO cron.job_run_details (jobid, database, username, command, status, start_time, end_time)
VALUES (0, 'app', 'postgres', 'SELECT 1', 'succeeded',
        pg_catalog.now() OPERATOR(pg_catalog.-) '30 days'::interval,
        pg_catalog.now() OPERATOR(pg_catalog.-) '30 days'::interval);
});

# an idle session for the reaper to end (so that its job's count(*) counts)
my $idle = $node->background_psql('app', extra_params => [ '-U', 'sec_led_owner' ]);
$idle->query_safe('SELECT 1');
my $idle_pid = $node->safe_psql('app', q{
SELECT a.pid FROM pg_catalog.pg_stat_activity a
WHERE a.usename OPERATOR(pg_catalog.=) 'sec_led_owner'::pg_catalog.name});

ok( $node->poll_query_until('app', q{
SELECT pg_catalog.count(*) FILTER (WHERE j.last_status OPERATOR(pg_catalog.=) ANY ('{succeeded,failed}'::pg_catalog.text[]))
       OPERATOR(pg_catalog.=) 4
FROM dbops.jobs j}),
	'the four jobs ran at the minute boundary');
is($node->safe_psql('app', q{
SELECT pg_catalog.string_agg(j.job_name OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) j.username
                             OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) j.last_status,
                             ', ' ORDER BY j.job_name)
FROM dbops.jobs j}),
	'dbops-bloat-snapshot postgres succeeded, dbops-cron-history postgres succeeded, '
	  . 'dbops-health-snapshot postgres succeeded, dbops-reap postgres succeeded',
	'each ran as the superuser and succeeded');
is($node->safe_psql('app', q{
SELECT (SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM dbops.health_history) AND
       (SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM dbops.bloat_history) AND
       NOT EXISTS (SELECT 1 FROM cron.job_run_details d WHERE d.jobid OPERATOR(pg_catalog.=) 0)}),
	't', 'the snapshots were written and the old run deleted');

is($node->safe_psql('app', qq{
SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a WHERE a.pid OPERATOR(pg_catalog.=) $idle_pid}),
	'0', 'the reap job ended the idle session');
eval { $idle->quit; };

is($node->safe_psql('app', q{
SELECT pg_catalog.count(*) FROM evil.trap_log t WHERE t.is_super}), '0', 'no trap ran as a superuser');
is($node->safe_psql('app', q{
SELECT coalesce(pg_catalog.string_agg(t.trap OPERATOR(pg_catalog.||) ' in ' OPERATOR(pg_catalog.||) t.query, '; '), 'none')
FROM evil.trap_log t}), 'none', 'no trap ran at all');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_led_owner'}),
	'f', 'the owner did not become superuser');

$node->stop;
done_testing();
