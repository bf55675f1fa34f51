# The purge and the health snapshot as a superuser's pg_cron jobs in a
# database an ordinary role owns.  The owner sets the database's
# search_path to a schema of its own first (ALTER DATABASE ... SET
# search_path = evil, pg_catalog, public), where functions, operators and a
# domain shadow those retention uses; its policy table has a BEFORE DELETE
# trigger, and (up to 15, where a table can still become a view) another of
# its policy tables became a view whose _RETURN rule calls its function.  Every trap records who ran it and tries to make the
# owner superuser.  The jobs run in pg_cron's background workers, which pick
# up the database's search_path.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('cron', cron => 'postgres', cron_workers => 1, pg_cron => 1,
	dbops => 0);

# this test's own sessions use a search_path of their own (PGOPTIONS
# overrides the database's setting); pg_cron's workers get the database's
$ENV{PGOPTIONS} = '-c search_path=pg_catalog,public';

$node->safe_psql('postgres', q{
CREATE ROLE appowner LOGIN;
CREATE DATABASE app OWNER appowner;
});
$node->safe_psql('app', q{
CREATE EXTENSION dbops;
GRANT EXECUTE ON FUNCTION
    dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean),
    dbops._retention_validate(regclass, name, interval, integer) TO appowner;
GRANT SELECT, INSERT ON dbops.retention_policies TO appowner;
});

# everything below as the database's owner
$node->safe_psql('app', q{
SET ROLE appowner;
CREATE SCHEMA evil;
CREATE TABLE evil.trap_log (what text, cur name, super_after boolean);
GRANT SELECT, INSERT ON evil.trap_log TO PUBLIC;
CREATE TABLE evil.seen (search_path text);
GRANT SELECT, INSERT ON evil.seen TO PUBLIC;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.trap(what text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    BEGIN
        ALTER ROLE appowner SUPERUSER;
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    INSERT INTO evil.trap_log
    VALUES (what, current_user, (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = 'appowner'));
    RETURN true;
END
$$;
CREATE FUNCTION evil.make_interval(secs integer) RETURNS interval
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT pg_catalog.make_interval(secs => secs::float8) WHERE evil.trap('make_interval(integer)') $$;
CREATE FUNCTION evil.now() RETURNS timestamptz
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT pg_catalog.now() WHERE evil.trap('now()') $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT pg_catalog.clock_timestamp() WHERE evil.trap('clock_timestamp()') $$;
CREATE FUNCTION evil.ts_lt(timestamptz, timestamptz) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.<) $2 WHERE evil.trap('<(timestamptz, timestamptz)') $$;
CREATE OPERATOR evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.ts_lt);
CREATE FUNCTION evil.num_mul(numeric, integer) RETURNS numeric
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.*) $2 WHERE evil.trap('*(numeric, integer)') $$;
CREATE OPERATOR evil.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = evil.num_mul);
CREATE FUNCTION evil.int_eq(integer, integer) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.=) $2 WHERE evil.trap('=(integer, integer)') $$;
CREATE OPERATOR evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.int_eq);
CREATE DOMAIN evil.text AS pg_catalog.text CHECK (evil.trap('domain text'));
CREATE DOMAIN evil.timestamptz AS pg_catalog.timestamptz CHECK (evil.trap('domain timestamptz'));

-- a policy table with a BEFORE DELETE trigger that records who runs it
CREATE TABLE public.ev (id int, at timestamptz NOT NULL);
CREATE INDEX ON public.ev (at);
INSERT INTO public.ev SELECT i, pg_catalog.now() - i * interval '1 day' FROM generate_series(1, 40) i;
CREATE FUNCTION public.ev_trig() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM evil.trap('before delete trigger');
    RETURN OLD;
END
$$;
CREATE TRIGGER ev_trig BEFORE DELETE ON public.ev FOR EACH ROW EXECUTE FUNCTION public.ev_trig();
SELECT dbops.add_retention_policy('ev', 'at', '30 days');

});
# a policy table that becomes a view (16 and later refuse ON SELECT rules on
# tables)
my $with_view = $node->pg_version < 16;
$node->safe_psql('app', q{
CREATE TABLE public.gone (id int, at timestamptz NOT NULL);
SELECT dbops.add_retention_policy('gone', 'at', '1 day');
CREATE RULE "_RETURN" AS ON SELECT TO public.gone DO INSTEAD
    SELECT 1 AS id, pg_catalog.now() - interval '1 year' AS at WHERE evil.trap('_RETURN rule');
}) if $with_view;
$node->safe_psql('app', q{ALTER DATABASE app SET search_path = evil, pg_catalog, public});
my $policies = $with_view ? 2 : 1;

# the superuser's jobs, as dbops.schedule() would make them
$node->safe_psql('postgres', q{
SELECT cron.schedule_in_database('purge', '* * * * *', 'CALL dbops.purge()', 'app');
SELECT cron.schedule_in_database('health', '* * * * *', 'SELECT * FROM dbops.health_snapshot()', 'app');
SELECT cron.schedule_in_database('seen', '* * * * *', 'INSERT INTO evil.seen SELECT pg_catalog.current_setting(''search_path'')', 'app');
});

ok( $node->poll_query_until('app',
		"SELECT count(DISTINCT relation) = $policies FROM dbops.purge_runs WHERE finished IS NOT NULL", 't'),
	'the scheduled purge ran every policy');
ok( $node->poll_query_until('app',
		"SELECT count(*) > 0 FROM dbops.health_history WHERE check_name = 'retention'", 't'),
	'the scheduled health snapshot ran');
ok($node->poll_query_until('app', "SELECT count(*) > 0 FROM evil.seen", 't'),
	'the probe job ran');
$node->safe_psql('postgres', q{
SELECT cron.unschedule('purge');
SELECT cron.unschedule('health');
SELECT cron.unschedule('seen');
});

is($node->safe_psql('app', "SELECT DISTINCT search_path FROM evil.seen"),
	'evil, pg_catalog, public', "pg_cron's jobs ran with the owner's search_path");
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'appowner'"),
	'f', 'the database owner did not become superuser');
is( $node->safe_psql('app',
		"SELECT string_agg(DISTINCT what || ' as ' || cur || (CASE WHEN super_after THEN ' (superuser!)' ELSE '' END), ', ') FROM evil.trap_log"),
	'before delete trigger as appowner',
	'only the trigger ran, as the table owner; no shadowing function, operator, domain or rule ran');
is( $node->safe_psql('app',
		"SELECT string_agg(relation || ' ' || status || ' ' || rows_deleted, ', ' ORDER BY relation) FROM (SELECT DISTINCT ON (relation) * FROM dbops.purge_runs WHERE finished IS NOT NULL ORDER BY relation, run_id) r"),
	$with_view ? 'ev done 11, gone skipped 0' : 'ev done 11',
	'ev purged' . ($with_view ? ', the view refused' : ''));
like( $node->safe_psql('app', "SELECT message FROM dbops.purge_runs WHERE relation = 'gone' LIMIT 1"),
	qr/public\.gone is a view, not a table: it is not read/, 'the run says why') if $with_view;
is($node->safe_psql('app', "SELECT count(*) FROM public.ev"), '29', 'the young rows are all there');
like( $node->safe_psql('app',
		"SELECT detail FROM dbops.health_history WHERE check_name = 'retention' ORDER BY taken_at DESC LIMIT 1"),
	qr/public\.gone: public\.gone is a view, not a table: it is not read/,
	'the snapshot reports the view without reading it') if $with_view;

$node->stop;
done_testing();
