# One zone decides (issue 13, item 7): timestamp-without-time-zone columns
# are read in retention.timezone, else log_timezone, whatever a client's
# PGTZ or PGOPTIONS, a role's or a database's TimeZone say, at write time,
# sweep time, report/verify time and in the background worker.  And a
# failed sweep copies no clear value into the server log (item 21).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('zone');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'retention'
retention.enabled = off
timezone = 'UTC'
log_timezone = 'UTC'
max_worker_processes = 16
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION retention CASCADE;
	CREATE TABLE cdr_local (id int, caller retention.msisdn(network_security), ended_local timestamp);
	SELECT retention.protect('cdr_local', 'ended_local');
	-- the UTC wall time of the network_security cutoff, shifted
	CREATE FUNCTION wall(shift interval) RETURNS timestamp LANGUAGE sql AS $$
		SELECT (now() AT TIME ZONE 'UTC') - interval '3 months' + shift $$;
});

# write one row an hour inside its window and one an hour past it, with
# the client environment given
sub write_pair
{
	my ($id, %env) = @_;
	local %ENV = (%ENV, %env);
	$node->safe_psql('postgres', qq{
		INSERT INTO cdr_local VALUES ($id, '33611111111', wall('1 hour')),
									 ($id + 1, '33611111112', wall('-1 hour'))});
}

sub ids
{
	my (%env) = @_;
	local %ENV = (%ENV, %env);
	return $node->safe_psql('postgres', q{SELECT string_agg(id::text, ',' ORDER BY id) FROM cdr_local});
}

write_pair(10, PGTZ => 'Asia/Tokyo');
write_pair(20, PGTZ => 'Etc/GMT+12');
write_pair(30, PGOPTIONS => '-c timezone=Pacific/Kiritimati');
{
	# retention.timezone itself is the server's: no client sets it
	local $ENV{PGOPTIONS} = '-c retention.timezone=Asia/Tokyo';
	my ($ret, $out, $err) = $node->psql('postgres', q{SELECT 1});
	like($err, qr/parameter "retention.timezone" cannot be changed now/,
		'a client cannot set retention.timezone');
}
write_pair(40);
{
	# nor log_timezone, the zone used when retention.timezone is empty
	local $ENV{PGOPTIONS} = '-c log_timezone=Asia/Tokyo';
	my ($ret, $out, $err) = $node->psql('postgres', q{SELECT 1});
	like($err, qr/parameter "log_timezone" cannot be changed now/, 'a client cannot set log_timezone');
}
foreach my $sql (q{SET retention.timezone = 'Asia/Tokyo'}, q{SET log_timezone = 'Asia/Tokyo'},
				 q{ALTER ROLE CURRENT_USER SET retention.timezone = 'Asia/Tokyo'},
				 q{ALTER DATABASE postgres SET log_timezone = 'Asia/Tokyo'})
{
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	like($err, qr/cannot be changed now/, "refused: $sql");
}
$node->safe_psql('postgres', q{ALTER DATABASE postgres SET timezone = 'Etc/GMT+12'});
write_pair(50);
$node->safe_psql('postgres', q{ALTER DATABASE postgres RESET timezone;
							   CREATE ROLE writer LOGIN; GRANT INSERT ON cdr_local TO writer;
							   GRANT EXECUTE ON FUNCTION wall(interval) TO writer;
							   ALTER ROLE writer SET timezone = 'Asia/Tokyo'});
write_pair(60, PGUSER => 'writer');
is(ids(), '10,20,30,40,50,60',
	'PGTZ, PGOPTIONS, ALTER DATABASE and ALTER ROLE move no deadline at write time');

# sweeps, verify() and report() in other zones keep what is in its window
$node->safe_psql('postgres', q{INSERT INTO cdr_local VALUES (70, '33611111117', wall('10 minutes'))});
{
	local $ENV{PGTZ} = 'Pacific/Kiritimati';
	$node->safe_psql('postgres', q{CALL retention.sweep()});
}
is(ids(), '10,20,30,40,50,60,70', 'a sweep with PGTZ east of the zone deletes nothing early');
{
	local $ENV{PGOPTIONS} = '-c timezone=Etc/GMT+12';
	is($node->safe_psql('postgres', q{SELECT sum(overdue_rows) FROM retention.report() WHERE kind = 'tagged'}),
		'0', 'report() with a client zone far west counts nothing overdue');
}

# the worker, in a database whose TimeZone says otherwise
$node->safe_psql('postgres', q{ALTER DATABASE postgres SET timezone = 'Pacific/Kiritimati';
							   ALTER SYSTEM SET retention.enabled = on;
							   ALTER SYSTEM SET retention.sweep_interval = '1s'});
$node->reload;
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM retention.sweep_log
		 WHERE run_by LIKE '%retention sweeper%' AND status = 'done'}),
	'the worker swept');
is(ids(), '10,20,30,40,50,60,70', 'the worker follows no ALTER DATABASE ... SET timezone');
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.enabled = off});
$node->reload;

# a row an hour past its window, written before protection, goes at the
# next sweep whatever the client's zone
$node->safe_psql('postgres', q{
	CREATE TABLE cdr_late (id int, caller retention.msisdn(network_security), ended_local timestamp);
	INSERT INTO cdr_late VALUES (1, '33611111111', wall('-1 hour'));
	SELECT retention.protect('cdr_late', 'ended_local')});
{
	local $ENV{PGTZ} = 'Etc/GMT+12';
	my ($ret, $out, $err) = $node->psql('postgres', q{SELECT retention.verify()});
	like($err, qr/retention is overdue: 1 rows/, 'verify() with PGTZ west of the zone sees the overdue row');
	$node->safe_psql('postgres', q{CALL retention.sweep('cdr_late')});
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM cdr_late}), '0',
	'a sweep with PGTZ west of the zone deletes the overdue row');

# the launcher says when log_timezone, which decides, is not TimeZone
$node->safe_psql('postgres', q{ALTER SYSTEM SET log_timezone = 'Asia/Tokyo'});
$node->reload;
$node->wait_for_log(
	qr/WARNING:  retention reads timestamp columns in log_timezone "Asia\/Tokyo", not in TimeZone "UTC"\n.*DETAIL:  retention.timezone is empty\./);
pass('the launcher warns when log_timezone and TimeZone differ');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET log_timezone});
$node->reload;

# --- no clear value in the server log ----------------------------------------

$node->safe_psql('postgres', q{
	CREATE TABLE cdr_check (id int, caller retention.msisdn(network_security),
							callee retention.msisdn(billing), ended_at timestamptz,
							CHECK (caller IS NOT NULL));
	CREATE UNIQUE INDEX ON cdr_check (callee);
	SELECT retention.protect('cdr_check', 'ended_at');
	-- the numbers are not in the statement's text (log_statement = all)
	INSERT INTO cdr_check VALUES (1, '336' || '12340001', '336' || '98760001', now() - interval '6 months');
	CALL retention.sweep('cdr_check');
	CREATE ROLE clerk IN ROLE retention_admin;
	SET ROLE clerk;
	CALL retention.sweep('cdr_check', dry_run => true);
});
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.enabled = on});
$node->reload;
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM retention.sweep_log
		 WHERE relid = 'cdr_check'::regclass AND run_by LIKE '%retention sweeper%' AND status = 'failed'}),
	'the worker failed on the table too');
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.enabled = off});
$node->reload;

my $log = slurp_file($node->logfile);
like($log, qr/sweep of table "cdr_check" failed: new row for relation "cdr_check" violates check constraint/,
	'the failure is logged');
unlike($log, qr/33698760001|33612340001/, 'no subscriber number in the server log');
unlike($log, qr/Failing row contains/, 'no failing row in the server log');

$node->stop;
done_testing();
