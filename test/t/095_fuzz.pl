# Fuzz: random, type-aware calls of every dbops function and procedure with
# hostile values, while another session creates and drops tables, holds
# locks, sits idle in a transaction and cancels the fuzzing session's
# statements.  Asserts what a user would see: no server crash, no internal
# error (XX000), no session left unusable, no function broken for the callers
# that come after, and that every error dbops raised (or that PostgreSQL
# raised inside a dbops function) has a hint and quotes a bounded part of
# the input.
#
#   DBOPS_FUZZ_SECONDS  how long to call (default 60)
#   DBOPS_FUZZ_SEED     replay a run (each run prints its seed)
use strict;
use warnings;
use DbopsCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# BackgroundPsql notes every query and its result: thousands of calls would
# bury the log.  Keep the log to what this test says.
{
	no warnings 'redefine';
	*PostgreSQL::Test::BackgroundPsql::note = sub { };
}

my $seconds = $ENV{DBOPS_FUZZ_SECONDS} // 60;
my $seed = $ENV{DBOPS_FUZZ_SEED} // (time() ^ $$) % 1000000;
srand($seed);
diag("dbops fuzz seed $seed (replay with DBOPS_FUZZ_SEED=$seed), $seconds s");

my $node = dbops_primary('fuzz', cron => 'postgres', pg_cron => 1,
	conf => [ 'max_prepared_transactions = 2', 'dbops.reaper_naptime = 1' ]);

$node->safe_psql(
	'postgres', q{
CREATE ROLE fuzz_user LOGIN;
CREATE ROLE fuzz_monitor LOGIN IN ROLE pg_monitor;
CREATE TABLE t_plain (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), v text);
INSERT INTO t_plain (created_at, v)
  SELECT now() - i * interval '1 hour', repeat('x', i % 50) FROM generate_series(1, 2000) i;
CREATE INDEX t_plain_created ON t_plain (created_at);
CREATE TABLE "Weird ""Name""" (ts timestamptz, "odd col" int);
CREATE TABLE t_part (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
CREATE TABLE t_part_old PARTITION OF t_part FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');
CREATE TABLE t_part_new PARTITION OF t_part FOR VALUES FROM ('2001-01-01') TO ('3000-01-01');
CREATE VIEW v_view AS SELECT * FROM t_plain;
CREATE MATERIALIZED VIEW m_view AS SELECT * FROM t_plain;
CREATE SEQUENCE s_seq;
CREATE TABLE chaos_t (ts timestamptz, v int);
CREATE TABLE gone_t (ts timestamptz);
CREATE TABLE ledger_src (version text, description text);
INSERT INTO ledger_src VALUES ('1', 'one'), (E'2\n', 'newline'), (NULL, 'null');
GRANT SELECT ON ALL TABLES IN SCHEMA public TO fuzz_user, fuzz_monitor;
});
my $gone_oid = $node->safe_psql('postgres',
	q{SELECT 'gone_t'::regclass::oid; DROP TABLE gone_t});

# The calls every later caller must still be able to make.
my @canonical = (
	'SELECT count(*) >= 0 FROM dbops.health()',
	'SELECT dbops.health_status() IS NOT NULL',
	'SELECT dbops.health_json() IS NOT NULL',
	'SELECT count(*) >= 0 FROM dbops.lock_tree()',
	'SELECT count(*) >= 0 FROM dbops.bloat(method => $$stats$$)',
	'SELECT count(*) >= 0 FROM dbops.migration_status()',
	'SELECT count(*) >= 0 FROM dbops.reaper_status()',
	'SELECT count(*) >= 0 FROM dbops.cron_status()',
	'SELECT count(*) >= 0 FROM dbops.jobs',
	'SELECT count(*) >= 0 FROM dbops.health_trend($$connections$$)',
	'SELECT dbops.health_metrics() IS NOT NULL');

my %broken_before;
for my $q (@canonical)
{
	my ($ret, $out, $err) = $node->psql('postgres', $q);
	$broken_before{$q} = $err if $ret != 0;
}
is(join("\n", sort keys %broken_before), '',
	'every canonical call works before the fuzzing');

# Hostile values by type.
my %pool = (
	regclass => [
		'NULL', q{'t_plain'}, q{'v_view'}, q{'m_view'}, q{'s_seq'},
		q{'t_plain_created'}, q{'"Weird ""Name"""'}, q{'t_part'}, q{'t_part_old'},
		q{'chaos_t'}, q{'pg_class'}, q{'dbops.migrations'}, q{'dbops.health_thresholds'},
		'0', $gone_oid, '4294967295', q{'ledger_src'}, q{'pg_toast.pg_toast_1255'}
	],
	text => [
		'NULL', q{''}, q{'x'}, q{'1'}, q{'2'}, q{'10'}, q{E'2\n'}, q{' '},
		q{'"'}, q{''''}, q{repeat('9', 140000)}, q{repeat('a', 70000)},
		q{'idle'}, q{'stats'}, q{'sample'}, q{'exact'}, q{'auto'}, q{'terminate'},
		q{'cancel'}, q{'* * * * *'}, q{'*/15 * * * *'}, q{'1 seconds'}, q{'61 minutes'},
		q{'bogus'}, q{'UTC'}, q{'Mars/Phobos'}, q{'SELECT 1'}, q{'SELECT pg_sleep(0.05)'},
		q{'CREATE TABLE fuzz_made (a int)'}, q{'postgres'}, q{'template0'}, q{'nodb'},
		q{'connections'}, q{'retention'}, q{'health_snapshot'}, q{'purge'},
		q{'0123456789abcdef0123456789abcdef'}, q{'NaN'}, q{'-1'}, q{'Infinity'}
	],
	'text[]' => [
		'NULL', q{'{}'}, q{'{NULL}'}, q{'{""}'}, q{'{idle}'},
		q{'{idle,"idle in transaction"}'}, q{'{bogus}'}, q{'{Critical}'}, q{'{ok,warning}'},
		q{'{{a,b},{c,d}}'}, q{'{1}'}, q{'{1,2,1}'}
	],
	interval => [
		'NULL', q{'0'}, q{'-1 s'}, q{'1 us'}, q{'1 ms'}, q{'1 s'}, q{'5 min'}, q{'1 day'},
		q{'10000 years'}, q{'178000000 years'}, q{'-178000000 years'}, q{'1 mon'}
	],
	integer => [ 'NULL', '0', '-1', '1', '7', '5000', '2147483647', '-2147483648' ],
	bigint => [
		'NULL', '0', '-1', '1', '100', '1048576', '9223372036854775807',
		'-9223372036854775808'
	],
	boolean => [ 'NULL', 'true', 'false' ],
	'double precision' => [
		'NULL', q{'NaN'}, q{'Infinity'}, q{'-Infinity'}, '0', '-1', '1e308', '2', '0.5'
	],
	'timestamp with time zone' => [
		'NULL', q{'infinity'}, q{'-infinity'}, 'now()', q{'4713-01-01 BC'},
		q{'294276-12-31'}, q{'2000-06-01'}
	],
	'oid[]' => [ 'NULL', q{'{}'}, q{'{0}'}, q{'{1259}'}, "'{$gone_oid}'", q{'{4294967295}'} ],
	jsonb => [ 'NULL', q{'{}'}, q{'[]'}, q{'null'}, q{'{"1": "abc"}'}, q{'{"1": 1}'} ],
	name => [
		'NULL', q{''}, q{'created_at'}, q{'ts'}, q{'id'}, q{'v'}, q{'nope'},
		q{'"odd col"'}, q{'odd col'}, q{'"'}
	],
);

# Every function and procedure, with its arguments and which have defaults.
my @funcs;
for my $line (split /\n/, $node->safe_psql(
		'postgres', q{
	SELECT p.proname, p.prokind, p.pronargdefaults,
	       array_to_string(array(SELECT format_type(t, NULL)
	                             FROM unnest(p.proargtypes::oid[]) t), ','),
	       array_to_string(array(SELECT coalesce(p.proargnames[i], '')
	                             FROM generate_series(1, p.pronargs) i), ',')
	FROM pg_proc p
	WHERE p.pronamespace = 'dbops'::regnamespace
	  AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
	ORDER BY 1}))
{
	my ($name, $kind, $ndefaults, $types, $names) = split /\|/, $line, -1;
	my @types = $types eq '' ? () : split(/,/, $types, -1);
	my @names = $names eq '' ? () : split(/,/, $names, -1);
	push @funcs,
	  {
		name => $name,
		kind => $kind,
		types => \@types,
		names => \@names,
		ndefaults => $ndefaults
	  };
}
ok(scalar(@funcs) > 40, scalar(@funcs) . ' functions and procedures to call');

sub pick { my ($list) = @_; return $list->[ int(rand(@$list)) ]; }

sub random_call
{
	my $f = pick(\@funcs);
	my @args;
	my $n = scalar @{ $f->{types} };
	my $first_default = $n - $f->{ndefaults};
	for my $i (0 .. $n - 1)
	{
		next if $i >= $first_default && rand() < 0.4;
		my $type = $f->{types}[$i];
		my $values = $pool{$type} // ['NULL'];
		my $v = pick($values);
		$v = "${v}::$type" unless $v eq 'NULL' && rand() < 0.5;
		push @args, ($f->{names}[$i] ? "$f->{names}[$i] => $v" : $v);
	}
	my $call = "dbops.$f->{name}(" . join(', ', @args) . ')';
	return $f->{kind} eq 'p' ? "CALL $call" : "SELECT * FROM $call";
}

# The chaos session: drops and re-creates chaos_t while holding its lock,
# locks t_plain, and cancels the fuzzing session's statements, for as long
# as the fuzzing runs (bounded by its own clock too).
my $fuzz = $node->background_psql('postgres', on_error_stop => 0);
my $fuzz_pid = $fuzz->query_safe('SELECT pg_backend_pid()');
$fuzz->query_safe('\set VERBOSITY verbose');
# A call that waits for a lock the idle transaction holds gives up (55P03)
# instead of stalling the run.
$fuzz->query_safe("ALTER ROLE ALL SET lock_timeout = '2s'");
$fuzz->query_safe("SET lock_timeout = '2s'");

$node->safe_psql(
	'postgres', q{
CREATE PROCEDURE fuzz_chaos(seconds int, victim int) LANGUAGE plpgsql AS $$
DECLARE
    stop timestamptz := clock_timestamp() + make_interval(secs => seconds);
    r float8;
BEGIN
    -- never queue for long behind the idle transaction (and so block
    -- everybody behind us)
    SET lock_timeout = '100ms';
    WHILE clock_timestamp() < stop LOOP
        r := random();
        BEGIN
            IF r < 0.3 THEN
                LOCK TABLE chaos_t IN ACCESS EXCLUSIVE MODE;
                PERFORM pg_sleep(0.02 + random() * 0.05);
                DROP TABLE chaos_t;
                CREATE TABLE chaos_t (ts timestamptz, v int);
            ELSIF r < 0.5 THEN
                LOCK TABLE t_plain IN ACCESS EXCLUSIVE MODE;
                PERFORM pg_sleep(random() * 0.05);
            ELSIF r < 0.7 THEN
                PERFORM pg_cancel_backend(victim);
            ELSE
                PERFORM pg_sleep(random() * 0.03);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
        COMMIT;
    END LOOP;
END
$$;
});
my $chaos = $node->background_psql('postgres', on_error_stop => 0);
my $idle = $node->background_psql('postgres', on_error_stop => 0);
$idle->query_safe('BEGIN; SELECT count(*) FROM t_plain');
$chaos->{stdin} .= "CALL fuzz_chaos($seconds, $fuzz_pid);\n";
$chaos->{run}->pump_nb();

# One round trip; returns what the server said on stderr, undef when the
# connection is gone.
sub fuzz_query
{
	my ($sql) = @_;
	$fuzz->{stderr} = '';
	my $ok = eval { $fuzz->query($sql); 1 };
	return $ok ? $fuzz->{stderr} : undef;
}

my (@internal, @unusable, @lost, %no_hint, @long, %seen_sqlstate);

# The SQLSTATE classes that need no hint: cancels and timeouts, lock and
# serialization failures, an aborted transaction block, resource limits.
my $no_hint_needed = qr/^(57|40|53|25P02|55P03)/;

# Split psql's verbose error reports and judge each: an internal error is a
# defect; an error raised by dbops (its C files, or a dbops function in the
# CONTEXT) needs a hint and a bounded message.
sub check_errors
{
	my ($call, $err) = @_;
	my @reports = split /(?=^psql:<stdin>:\d+: (?:ERROR|FATAL|PANIC):)/m, $err;
	for my $r (@reports)
	{
		next unless $r =~ /^psql:<stdin>:\d+: (?:ERROR|FATAL|PANIC):  ([0-9A-Z]{5}): ([^\n]*)/;
		my ($state, $msg) = ($1, $2);
		$seen_sqlstate{$state}++;
		push @internal, "$call -> $state: " . substr($msg, 0, 200)
		  if $state eq 'XX000' || $state =~ /^58/;
		my $ours = $r =~ /^CONTEXT:.*\bdbops\./m
		  || $r =~ /^LOCATION:  \S+, (?:dbops|health|bloat|reaper|locktree|livestatus|ledger|retention|retention_exec|schedule|secure)\.c:/m;
		# internal functions called directly are not the interface: they
		# must not fail internally, but their errors need no hint
		next unless $ours && $call !~ /dbops\._/;
		# the caller's own migration script failing is the caller's error
		next if $r =~ /^(?:CONTEXT:  )?PL\/pgSQL function dbops\._migrat\w*\(.*\) line \d+ at EXECUTE$/m;
		push @long, "$call -> $state: " . substr($msg, 0, 120) . '... (' . length($msg) . ' characters)'
		  if length($msg) > 1000;
		next if $state =~ $no_hint_needed || $r =~ /^HINT:  /m;
		(my $shape = $msg) =~ s/"[^"]*"/"..."/g;
		$shape = substr($shape, 0, 160);
		my ($fn) = $call =~ /(dbops\.\w+)/;
		$no_hint{"$fn $state: $shape"} //= $call;
	}
}
my $calls = 0;
my $deadline = time() + $seconds;
while (time() < $deadline)
{
	my $r = rand();
	my @stmts;
	my $call = random_call();
	if ($r < 0.15)
	{
		@stmts = ("SET ROLE fuzz_user", $call, "RESET ROLE");
	}
	elsif ($r < 0.25)
	{
		@stmts = ("SET ROLE fuzz_monitor", $call, "RESET ROLE");
	}
	elsif ($r < 0.4)
	{
		my $ms = 1 + int(rand(30));
		@stmts = ("SET statement_timeout = '${ms}ms'", $call, "RESET statement_timeout");
	}
	elsif ($r < 0.5)
	{
		@stmts = ("BEGIN", $call, (rand() < 0.5 ? "COMMIT" : "ROLLBACK"));
	}
	else
	{
		@stmts = ($call);
	}
	$calls++;
	my $err = fuzz_query(join(";\n", @stmts));
	if (!defined $err)
	{
		push @lost, "$call: the connection was lost";
		last;
	}
	check_errors($call, $err);
	if ($err =~ /FATAL|PANIC|server closed the connection|connection to server was lost/)
	{
		push @lost, "$call: $err";
		last;
	}

	# The session must be usable again at once: end whatever block is left
	# open (the statements above may have failed inside one), then probe,
	# twice, outside any block.  The chaos session's cancels may hit a probe
	# too: a probe cancelled (57014) is tried again; anything else it gets
	# (25P02 outside a block, a FATAL) means the call broke the session.
	my $probe = fuzz_query("ROLLBACK");
	$probe = fuzz_query("RESET ROLE; RESET statement_timeout") if defined $probe;
	if (!defined $probe)
	{
		push @lost, "$call: the connection was lost after the call";
		last;
	}
	for my $n (1, 2)
	{
		my $err;
		for my $try (1 .. 5)
		{
			$err = fuzz_query("SELECT 'alive'");
			last if !defined $err || $err !~ /\b57014\b/;
		}
		if (!defined $err)
		{
			push @lost, "$call: the connection was lost on probe $n";
			last;
		}
		if ($err =~ /ERROR|FATAL/ && $err !~ /\b57014\b/)
		{
			push @unusable, "$call (probe $n): $err";
			fuzz_query("ROLLBACK");
		}
	}
	last if @lost;
}
note("$calls calls; SQLSTATEs seen: "
	  . join(', ', map { "$_ x$seen_sqlstate{$_}" } sort keys %seen_sqlstate));
diag("$calls calls in $seconds s");

is(join("\n", @lost), '', 'the fuzzing session was never lost');
is(join("\n", @internal[ 0 .. ($#internal < 20 ? $#internal : 20) ]),
	'', 'no internal error (XX000) and no I/O error');
is(join("\n", @unusable[ 0 .. ($#unusable < 20 ? $#unusable : 20) ]),
	'', 'the session was usable after every call');
my @no_hint = map { "$_\n    e.g. $no_hint{$_}" } sort keys %no_hint;
is(join("\n", @no_hint[ 0 .. ($#no_hint < 40 ? $#no_hint : 40) ]),
	'', 'every error of dbops has a hint (' . scalar(@no_hint) . ' kinds without one)');
is(join("\n", @long[ 0 .. ($#long < 10 ? $#long : 10) ]),
	'', 'no error message of dbops is longer than 1000 characters');

$chaos->{run}->kill_kill;
$idle->{run}->kill_kill;
eval { $fuzz->quit; };

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|TRAP:/, 'no backend crashed');

# Every canonical call still works, as a superuser and as a pg_monitor
# member, in a new session.
for my $user ('postgres', 'fuzz_monitor')
{
	for my $q (@canonical)
	{
		my ($ret, $out, $err) =
		  $node->psql('postgres', $q, extra_params => [ '-U', $user ]);
		is($ret, 0, "after the fuzzing, as $user: $q") or diag($err);
	}
}

$node->stop;
done_testing();
