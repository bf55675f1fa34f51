# The reaper worker runs as the bootstrap superuser in dbops.reaper_database:
# nothing a database owner (or a role with CREATE on a schema the worker
# could search) creates may run in it.  The owner of the reaper's database
# creates public.*(numeric, integer) (the exact match for the policy query's
# microseconds arithmetic), then sets the database's search_path to a schema
# of theirs first (operators over the worker's types, domains named like the
# types it casts to); then a superuser's role setting does the same.  After
# every change the worker is restarted (settings apply at connection), sweeps
# several times, reaps a session, writes dbops.reaper_log and prunes it.  The
# owner must not have become superuser and no trap may have run.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# dbops in postgres too: the monitoring queries of this test run there,
# away from appdb's hostile settings
my $node = dbops_primary('reaper_search_path',
	conf => [ 'dbops.reaper_naptime = 1', "dbops.reaper_database = 'appdb'" ]);

my $bootstrap =
  $node->safe_psql('postgres', 'SELECT rolname FROM pg_roles WHERE oid = 10');

$node->safe_psql(
	'postgres', q(
CREATE ROLE sec_hea_owner LOGIN;
CREATE ROLE sec_hea_victim LOGIN;
CREATE DATABASE appdb OWNER sec_hea_owner;
));
$node->safe_psql(
	'appdb', q(
CREATE EXTENSION dbops;
INSERT INTO dbops.reaper_policies (role_name, idle_timeout, note)
    VALUES ('sec_hea_victim', '1 second', 'victims');
INSERT INTO dbops.reaper_policies (idle_timeout, note)
    VALUES ('1 year', 'everyone else');
));

# The database owner's traps: each records who ran it and, as a superuser,
# makes the owner superuser.
$node->safe_psql(
	'appdb', q(
SET ROLE sec_hea_owner;
CREATE TABLE public.trap_log (tag text, run_as name);
GRANT INSERT ON public.trap_log TO PUBLIC;
CREATE FUNCTION public.trap(tag text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO public.trap_log VALUES (tag, current_user);
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        ALTER ROLE sec_hea_owner SUPERUSER;
    END IF;
    RETURN true;
END
$$;
CREATE FUNCTION public.mul(numeric, integer) RETURNS numeric
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM public.trap('public.*(numeric, integer)'); RETURN $1 OPERATOR(pg_catalog.*) $2; END $$;
CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.mul);

CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
DO $do$
DECLARE
    o record;
    res text;
    n int := 0;
BEGIN
    FOR o IN SELECT * FROM (VALUES
        ('*', 'numeric', 'int4'), ('*', 'numeric', 'numeric'),
        ('<', 'timestamptz', 'timestamptz'), ('=', 'int8', 'int8'),
        ('=', 'int4', 'int4'), ('=', 'text', 'text'), ('=', 'name', 'name'),
        ('=', 'oid', 'oid'), ('>', 'interval', 'interval'),
        ('-', 'timestamptz', 'interval'), ('-', 'timestamptz', 'timestamptz'))
        AS v(op, l, r)
    LOOP
        EXECUTE format('SELECT pg_catalog.pg_typeof(NULL::pg_catalog.%s OPERATOR(pg_catalog.%s) NULL::pg_catalog.%s)',
                       o.l, o.op, o.r) INTO res;
        n := n + 1;
        EXECUTE format($f$
            CREATE FUNCTION evil.op_%s(pg_catalog.%s, pg_catalog.%s) RETURNS %s
            LANGUAGE plpgsql SET search_path = pg_catalog AS $b$
            BEGIN
                PERFORM public.trap(%L);
                RETURN $1 OPERATOR(pg_catalog.%s) $2;
            END $b$$f$, n, o.l, o.r, res, format('evil.%s(%s, %s)', o.op, o.l, o.r), o.op);
        EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = pg_catalog.%s, RIGHTARG = pg_catalog.%s, FUNCTION = evil.op_%s)',
                       o.op, o.l, o.r, n);
    END LOOP;
    FOREACH res IN ARRAY ARRAY['int8', 'int4', 'numeric', 'text', 'name', 'inet', 'cidr',
                               'interval', 'timestamptz', 'oid', 'bool'] LOOP
        EXECUTE format('CREATE DOMAIN evil.%I AS pg_catalog.%I CHECK (public.trap(%L))',
                       res, res, 'domain evil.' || res);
    END LOOP;
END
$do$;
CREATE FUNCTION evil.extract(text, interval) RETURNS numeric
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM public.trap('evil.extract(text, interval)'); RETURN pg_catalog.extract($1, $2); END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM public.trap('evil.now()'); RETURN pg_catalog.now(); END $$;
));

# the traps work (as their owner)
is( $node->safe_psql(
		'appdb', q(
SET ROLE sec_hea_owner;
SET search_path = evil, pg_catalog, public;
SELECT 2::numeric * 3, now() IS NOT NULL, '1'::int8;
SET search_path = pg_catalog;
SELECT string_agg(DISTINCT tag || ' as ' || run_as, ', ' ORDER BY tag || ' as ' || run_as) FROM public.trap_log;
TRUNCATE public.trap_log;
)),
	"6|t|1\ndomain evil.int8 as sec_hea_owner, evil.*(numeric, int4) as sec_hea_owner, evil.now() as sec_hea_owner",
	'the traps run when their schema is searched');

# The test's own queries in appdb run with a search_path of their own (the
# database's and role's settings are the attacker's).
sub appdb_sql
{
	my ($sql) = @_;
	return $node->safe_psql('appdb', "SET search_path = pg_catalog; $sql");
}

sub poll_appdb
{
	my ($sql) = @_;
	local $ENV{PGOPTIONS} = '-c search_path=pg_catalog';
	return $node->poll_query_until('appdb', $sql);
}

sub traps_run
{
	return appdb_sql(
		"SELECT coalesce(string_agg(DISTINCT tag || ' as ' || run_as, ', '), 'none') FROM public.trap_log"
	);
}

# Restart (settings apply when the worker connects), give it old log rows to
# prune, let it sweep, reap a victim and log it.
sub exercise_worker
{
	my ($what) = @_;
	appdb_sql(
		"INSERT INTO dbops.reaper_log (seq, event_time, source, pid, action, outcome)
		 VALUES (0, now() - interval '60 days', 'worker', 1, 'terminate', 'signalled')");
	$node->restart;
	ok( $node->poll_query_until(
			'postgres', 'SELECT sweeps >= 3 FROM dbops.reaper_status()'),
		"$what: the worker sweeps");

	my $victim = $node->background_psql('appdb',
		extra_params => [ '-U', 'sec_hea_victim' ]);
	my $pid = $victim->query_safe('SELECT pg_backend_pid()');
	ok(wait_backend_gone($node, $pid),
		"$what: the worker reaps an idle session of the policy's role");
	$victim->quit;
	ok( poll_appdb(
			"SELECT EXISTS (SELECT FROM dbops.reaper_log WHERE pid = $pid AND outcome = 'signalled')"),
		"$what: and logs it in dbops.reaper_log");
	is(appdb_sql('SELECT count(*) FROM dbops.reaper_log WHERE pid = 1'),
		'0', "$what: the worker pruned the log's old rows");
	my $s = $node->safe_psql('postgres', 'SELECT sweeps FROM dbops.reaper_status()');
	$node->poll_query_until('postgres',
		"SELECT sweeps >= $s + 3 FROM dbops.reaper_status()");

	is(traps_run(), 'none', "$what: no trap ran");
	is( $node->safe_psql(
			'postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_hea_owner'"),
		'f',
		"$what: the database owner did not become superuser");
}

# 1. public.*(numeric, integer), default search_path
exercise_worker('public operator');

# 2. the database's search_path puts the owner's schema first
$node->safe_psql('appdb',
	'SET ROLE sec_hea_owner; ALTER DATABASE appdb SET search_path = evil, pg_catalog, public');
is( $node->safe_psql('appdb', 'SHOW search_path'),
	'evil, pg_catalog, public',
	'the owner set the database search_path');
exercise_worker('ALTER DATABASE SET search_path');

# 3. the same through the bootstrap superuser's role setting
$node->safe_psql('appdb',
	'SET ROLE sec_hea_owner; ALTER DATABASE appdb RESET search_path');
$node->safe_psql('postgres',
	"ALTER ROLE \"$bootstrap\" IN DATABASE appdb SET search_path = evil, pg_catalog, public");
is( $node->safe_psql('appdb', 'SHOW search_path'),
	'evil, pg_catalog, public',
	'the superuser role setting is in effect');
exercise_worker('ALTER ROLE SET search_path');

# 4. a superuser calls dbops.reap_idle() in that database, with the role
# setting in effect and with the default search_path
for my $path ('evil, pg_catalog, public', '"$user", public')
{
	$node->safe_psql('appdb',
		"SET search_path = $path; SELECT count(*) FROM dbops.reap_idle('1 day');"
		  . " SELECT count(*) FROM dbops.reap_idle('1 day', dry_run => false, action => 'cancel')");
}
is(traps_run(), 'none', 'dbops.reap_idle() by a superuser ran no trap');
is( $node->safe_psql(
		'postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_hea_owner'"),
	'f',
	'the database owner is not superuser');

$node->stop;
done_testing();
