# The clusters of dbops's TAP tests (test/t/*.pl), built on
# PostgreSQL::Test::Cluster of PostgreSQL 15 to 18.
#
#   my $node = dbops_primary('name', conf => "dbops.reaper_naptime = 1");
#   my ($primary, $standby) = dbops_pair('primary', 'standby',
#       setup => sub { $_[0]->safe_psql('postgres', 'CREATE TABLE t ()') });
#
# The tests run with this directory on perl's include path: make
# installcheck passes -I ./test to prove, tools/test -I to its copy of it.
#
# The methods called here (new, init, append_conf, start, backup,
# backup_dir, init_from_backup, wait_for_catchup, lsn, poll_query_until)
# take the same arguments and mean the same in the frameworks of 15, 17 and
# 18, so nothing here depends on the version; wait_for_replay_catchup, which
# 15 lacks, is not used.
package DbopsCluster;

use strict;
use warnings;
use Carp;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(dbops_primary dbops_standby dbops_pair wait_for_replay
  wait_backend_gone reaper_set_conf);

# dbops_primary(NAME, OPTION => VALUE...): a started cluster.
#
#   preload           shared_preload_libraries: 'dbops' unless given; '' or
#                     0 writes no such line (nothing preloaded)
#   cron              the cron.database_name to write; puts pg_cron first
#                     in the preload list
#   cron_workers      1: pg_cron runs its jobs in background workers
#                     (cron.use_background_workers, max_worker_processes = 16)
#   conf              more postgresql.conf lines: a string or a list of lines,
#                     written after those above
#   pg_cron           1: CREATE EXTENSION pg_cron in the cron database once
#                     started (that database must exist: postgres)
#   dbops             CREATE EXTENSION dbops in postgres once started: 1
#                     unless given; 0 leaves it out; a version ('1.0')
#                     installs that version
#   allows_streaming, has_archiving
#                     passed to PostgreSQL::Test::Cluster's init
sub dbops_primary
{
	my ($name, %o) = @_;
	my %known = map { $_ => 1 }
	  qw(preload cron cron_workers conf pg_cron dbops allows_streaming has_archiving);
	my @unknown = grep { !$known{$_} } sort keys %o;
	croak "dbops_primary: unknown option(s) @unknown" if @unknown;

	my $node = PostgreSQL::Test::Cluster->new($name);
	my %init;
	for my $k (qw(allows_streaming has_archiving))
	{
		$init{$k} = $o{$k} if $o{$k};
	}
	$node->init(%init);

	my $preload = exists $o{preload} ? $o{preload} : 'dbops';
	$preload = join(',', grep { $_ } 'pg_cron', $preload) if defined $o{cron};
	my @conf;
	push @conf, "shared_preload_libraries = '$preload'" if $preload;
	push @conf, "cron.database_name = '$o{cron}'" if defined $o{cron};
	push @conf, 'cron.use_background_workers = on', 'max_worker_processes = 16'
	  if $o{cron_workers};
	push @conf, ref $o{conf} ? @{ $o{conf} } : $o{conf} if defined $o{conf};
	$node->append_conf('postgresql.conf', join("\n", @conf)) if @conf;
	$node->start;

	if ($o{pg_cron})
	{
		croak 'dbops_primary: pg_cron => 1 needs cron => DATABASE'
		  unless defined $o{cron};
		$node->safe_psql($o{cron}, 'CREATE EXTENSION pg_cron');
	}
	my $dbops = exists $o{dbops} ? $o{dbops} : 1;
	if ($dbops)
	{
		$node->safe_psql('postgres',
			'CREATE EXTENSION dbops' . ($dbops eq '1' ? '' : " VERSION '$dbops'"));
	}
	return $node;
}

# dbops_standby(PRIMARY, NAME, OPTION => VALUE...): a streaming standby of
# PRIMARY (made with allows_streaming => 1), started.
#
#   backup    the base backup to start from: 'bk' unless given; taken now
#             when PRIMARY has none of that name yet, else reused (the
#             standby then streams the WAL written since)
#   conf      postgresql.conf lines for the standby, as for dbops_primary
#   catch_up  0: return at once; otherwise wait until the standby has
#             replayed what PRIMARY had written when it started
sub dbops_standby
{
	my ($primary, $name, %o) = @_;
	my %known = map { $_ => 1 } qw(backup conf catch_up);
	my @unknown = grep { !$known{$_} } sort keys %o;
	croak "dbops_standby: unknown option(s) @unknown" if @unknown;

	my $backup = $o{backup} // 'bk';
	$primary->backup($backup) unless -d $primary->backup_dir . "/$backup";
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, $backup, has_streaming => 1);
	$standby->append_conf('postgresql.conf',
		ref $o{conf} ? join("\n", @{ $o{conf} }) : $o{conf})
	  if defined $o{conf};
	$standby->start;
	$primary->wait_for_catchup($standby) if $o{catch_up} // 1;
	return $standby;
}

# dbops_pair(PRIMARY_NAME, STANDBY_NAME, OPTION => VALUE...): a primary made
# by dbops_primary (the options are its own, with allows_streaming => 1) and
# its streaming standby, started and caught up; returns both.
#
#   setup   code run with the primary once it is up, before the base backup
#           is taken (what the standby starts with)
#
# The base backup is 'bk': a further dbops_standby() of the primary starts
# from it too.
sub dbops_pair
{
	my ($primary_name, $standby_name, %o) = @_;
	my $setup = delete $o{setup};
	my $primary = dbops_primary($primary_name, %o, allows_streaming => 1);
	$setup->($primary) if $setup;
	my $standby = dbops_standby($primary, $standby_name);
	return ($primary, $standby);
}

# wait_for_replay(PRIMARY, STANDBY): wait until STANDBY has replayed the WAL
# PRIMARY has inserted so far, also what is not flushed or committed yet (a
# lock taken in an open transaction, say).  Dies on timeout.
sub wait_for_replay
{
	my ($primary, $standby) = @_;
	$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
	return;
}

# wait_backend_gone(NODE, PID): poll until NODE has no backend PID left in
# pg_stat_activity; true once it is gone, false on timeout.
sub wait_backend_gone
{
	my ($node, $pid) = @_;
	return $node->poll_query_until('postgres',
		"SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)");
}

# reaper_set_conf(NODE, NAME => VALUE...): ALTER SYSTEM SET dbops.NAME for
# each, reload, and wait until the reaper worker has swept twice since (it
# sweeps at once on SIGHUP): from then on every sweep uses the settings.
sub reaper_set_conf
{
	my ($node, %settings) = @_;
	for my $k (sort keys %settings)
	{
		$node->safe_psql('postgres',
			"ALTER SYSTEM SET dbops.$k = '$settings{$k}'");
	}
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	my $sweeps = $node->safe_psql('postgres',
		'SELECT sweeps FROM dbops.reaper_status()');
	$node->poll_query_until('postgres',
		"SELECT sweeps > $sweeps + 1 FROM dbops.reaper_status()");
}

1;
