# The ledger's failed-attempt writer is a background worker that connects as
# the bootstrap superuser, and a connection gets its database's settings.
# The owner of a database sets a search_path that puts its own schema first
# and creates domains named after the types the worker casts to (inet,
# name, text), whose CHECK runs its function: a failed migration, by the
# owner itself or by a superuser, wakes the worker, which must run none of
# it.  Also with a psql script (migration_begin(), then a failing statement:
# the worker starts after the abort) and with operators and functions of the
# owner's in front of pg_catalog for the ledger's own statements.
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = dbops_primary('ledger_worker', dbops => 0);

$node->safe_psql('postgres', q{
CREATE ROLE sec_led_owner LOGIN;
CREATE DATABASE app OWNER sec_led_owner;
});
# dbops in app, and the owner is also the deployer (the grants of doc/ledger.md)
$node->safe_psql('app', q{
CREATE EXTENSION dbops;
GRANT EXECUTE ON FUNCTION dbops.migrate(text, text, text, text[], boolean),
    dbops.migration_begin(text, text, text, text[], boolean) TO sec_led_owner;
GRANT SELECT, INSERT, UPDATE ON dbops.migrations TO sec_led_owner;
GRANT SELECT, INSERT ON dbops.migration_events TO sec_led_owner;
GRANT USAGE ON SEQUENCE dbops.migration_events_event_id_seq TO sec_led_owner;
});

# the owner's traps: every one records who ran it, and makes the owner
# superuser when it can
$node->safe_psql('app', q{
SET ROLE sec_led_owner;
CREATE SCHEMA evil;
CREATE TABLE evil.trap_log (trap text, run_as name, is_super boolean, backend_type text);
GRANT USAGE ON SCHEMA evil TO PUBLIC;
GRANT INSERT ON evil.trap_log TO PUBLIC;
CREATE FUNCTION evil.trap(what pg_catalog.text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
DECLARE
    super boolean := (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user);
BEGIN
    INSERT INTO evil.trap_log VALUES (what, current_user, super,
        (SELECT a.backend_type FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()));
    IF super THEN
        EXECUTE 'ALTER ROLE sec_led_owner SUPERUSER';
    END IF;
    RETURN true;
END;
$$;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['inet', 'name', 'text'] LOOP
        EXECUTE format('CREATE DOMAIN evil.%I AS pg_catalog.%I CHECK (evil.trap(%L))',
                       t, t, 'domain ' || t);
    END LOOP;
END;
$$;
-- and the operators and functions the ledger's own statements use
CREATE FUNCTION evil.text_eq(a pg_catalog.text, b pg_catalog.text) RETURNS boolean
LANGUAGE sql VOLATILE AS $$ SELECT evil.trap('=(text,text)') AND a OPERATOR(pg_catalog.=) b $$;
CREATE OPERATOR evil.= (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = evil.text_eq);
CREATE FUNCTION evil.clock_timestamp() RETURNS pg_catalog.timestamptz
LANGUAGE sql VOLATILE AS $$ SELECT CASE WHEN evil.trap('clock_timestamp()') THEN pg_catalog.clock_timestamp() END $$;
CREATE FUNCTION evil.btrim(a pg_catalog.text) RETURNS pg_catalog.text
LANGUAGE sql VOLATILE AS $$ SELECT CASE WHEN evil.trap('btrim(text)') THEN pg_catalog.btrim(a) END $$;
ALTER DATABASE app SET search_path = evil, pg_catalog, public;
});
is($node->safe_psql('app', 'SHOW search_path'), 'evil, pg_catalog, public',
	'a new session of app gets the owner\'s search_path');
ok($node->safe_psql('app', "SELECT 'x'::text = 'x'; SELECT count(*) > 0 FROM evil.trap_log") eq "t\nt",
	'the traps run in a session with that search_path');
$node->safe_psql('app', 'ALTER ROLE sec_led_owner NOSUPERUSER; TRUNCATE evil.trap_log');

sub wait_failed
{
	my ($version, $n) = @_;
	# (qualified: this session has the owner's search_path too)
	return $node->poll_query_until('app', qq{
SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>=) $n FROM dbops.migration_events
WHERE version OPERATOR(pg_catalog.=) '$version' AND event OPERATOR(pg_catalog.=) 'failed'});
}

sub verdict
{
	my ($what) = @_;
	is($node->safe_psql('app', q{
SET search_path = pg_catalog;
SELECT count(*) FROM evil.trap_log WHERE is_super}), '0', "$what: no trap ran as a superuser");
	is($node->safe_psql('app', q{
SET search_path = pg_catalog;
SELECT coalesce(string_agg(trap || ' ' || run_as || ' ' || coalesce(backend_type, '?'), ', '), 'none') FROM evil.trap_log}),
		'none', "$what: no trap ran at all");
	is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_led_owner'}),
		'f', "$what: the owner did not become superuser");
}

# 1. the owner runs a failing migration itself
my ($ret, $out, $err) = $node->psql('app', "SELECT dbops.migrate('0001', 'fails', 'SELECT 1/0')",
	extra_params => [ '-U', 'sec_led_owner' ]);
isnt($ret, 0, 'the failing migration fails');
like($err, qr/ERROR:  division by zero/, 'with its own error');
ok(wait_failed('0001', 1), 'the worker recorded the failed attempt');
is($node->safe_psql('app', q{
SET search_path = pg_catalog;
SELECT operation || ' ' || sqlstate || ' ' || message || ' ' || username
FROM dbops.migration_events WHERE version = '0001' AND event = 'failed'}),
	'migrate 22012 division by zero sec_led_owner', 'the event says what failed and for whom');
verdict('a failed migrate() of the owner');

# 2. a superuser's failed migration in that database (its session has the
# owner's search_path too)
($ret, $out, $err) = $node->psql('app', "SELECT dbops.migrate('0002', 'fails', 'SELECT 1/0')");
like($err, qr/ERROR:  division by zero/, 'a superuser\'s failing migration fails with its error');
ok(wait_failed('0002', 1), 'the worker recorded it');
verdict('a failed migrate() of a superuser');

# 3. a psql script: migration_begin(), then a failing statement; the worker
# starts after the abort, without the caller waiting
($ret, $out, $err) = $node->psql('app', q{
BEGIN;
SELECT dbops.migration_begin('0003', 'script');
CREATE TABLE evil.t3 ();
SELECT 1/0;
ROLLBACK;
}, extra_params => [ '-U', 'sec_led_owner' ]);
like($err, qr/ERROR:  division by zero/, 'the script fails');
ok(wait_failed('0003', 1), 'the worker recorded the failed script after the abort');
is($node->safe_psql('app', q{
SET search_path = pg_catalog;
SELECT operation || ' ' || sqlstate FROM dbops.migration_events
WHERE version = '0003' AND event = 'failed'}), 'migration_begin 22012', 'as a migration_begin failure');
verdict('a failed psql script of the owner');

# 4. the same by a superuser, and a successful migration: the ledger's own
# statements under that search_path
$node->psql('app', q{
BEGIN;
SELECT dbops.migration_begin('0004', 'script');
SELECT 1/0;
ROLLBACK;
});
ok(wait_failed('0004', 1), 'the worker recorded a superuser\'s failed script');
is($node->safe_psql('app', "SELECT dbops.migrate('0005', 'works', 'CREATE TABLE public.t5 ()')"),
	'applied', 'a migration applies under that search_path');
is($node->safe_psql('app', "SELECT dbops.migration_pending('0005')"), 'f', 'and is not pending any more');
verdict('a superuser\'s scripts');

$node->stop;
done_testing();
