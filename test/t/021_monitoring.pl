# Monitoring (issue 19, item 3): retention.metrics read by a login member of
# retention_auditor; tools/check_retention's OK, WARNING, CRITICAL and
# UNKNOWN against a real cluster; every query of
# contrib/postgres_exporter/queries.yaml run with the columns it declares,
# and, where prometheus-postgres-exporter is installed, scraped for real on
# loopback.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use HTTP::Tiny;
use Time::HiRes qw(sleep);

my $node = PostgreSQL::Test::Cluster->new('monitor');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'retention'\nretention.enabled = off");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION retention CASCADE;
	CREATE ROLE mon LOGIN IN ROLE retention_auditor;
	CREATE ROLE nobody LOGIN;
	CREATE TABLE cdr_mon (id int, caller retention.msisdn(billing),
						  cell retention.cell(network_security), ended_at timestamptz);
	INSERT INTO cdr_mon SELECT i, '+3361234567' || (i % 10), '208-01-1-' || i,
							   now() - i * interval '10 days'
	  FROM generate_series(1, 30) i;
	SELECT retention.protect('cdr_mon', 'ended_at', subscriber => 'caller');
});

my $connstr = $node->connstr('postgres');
sub check
{
	my ($role, @args) = @_;
	my ($stdout, $stderr);
	my $rc = IPC::Run::run(['tools/check_retention', @args, '-d', "$connstr user=$role"],
		'>', \$stdout, '2>', \$stderr) ? 0 : $? >> 8;
	chomp $stdout;
	return ($rc, $stdout);
}

my ($rc, $line);
# rows loaded before protect() and never swept
($rc, $line) = check('mon');
is($rc, 2, 'never swept, rows overdue: CRITICAL');
like($line, qr/^RETENTION CRITICAL - cdr_mon: 21 rows overdue, no sweep yet \| overdue_rows=21 held_rows=0 not_enforced=0 unprotected_copy_rows=0 rows_skipped=0$/,
	"  $line");

$node->safe_psql('postgres', 'CALL retention.sweep()');
($rc, $line) = check('mon');
is($rc, 0, 'swept: OK');
like($line, qr/^RETENTION OK - nothing overdue, 0 rows held, enforced everywhere, audit chain valid \| overdue_rows=0 held_rows=0 not_enforced=0 unprotected_copy_rows=0 last_sweep_age=\d+s;93600;180000 rows_skipped=0$/,
	"  $line");
is(scalar(() = $line =~ /\n/g), 0, '  one line');

sleep 2.1;
($rc, $line) = check('mon', '-w', '1');
is($rc, 1, 'a sweep older than -w: WARNING');
like($line, qr/^RETENTION WARNING - last sweep \d+s ago \|/, "  $line");

# a shorter window makes swept rows overdue: CRITICAL, by table
$node->safe_psql('postgres', q{SELECT retention.set_window('network_security', '45 days')});
($rc, $line) = check('mon');
is($rc, 2, 'rows overdue: CRITICAL');
like($line, qr/^RETENTION CRITICAL - cdr_mon: 5 rows overdue \| overdue_rows=5 /, "  $line");
$node->safe_psql('postgres', 'CALL retention.sweep()');
($rc, $line) = check('mon');
is($rc, 0, 'swept again: OK');

# triggers disabled by the superuser: not enforced, CRITICAL
$node->safe_psql('postgres', 'ALTER TABLE cdr_mon DISABLE TRIGGER retention_expire_before');
($rc, $line) = check('mon');
is($rc, 2, 'an expiry trigger disabled: CRITICAL');
like($line, qr/^RETENTION CRITICAL - 1 enforcement problems \(see retention.report\(\)\) \|/, "  $line");
$node->safe_psql('postgres', 'ALTER TABLE cdr_mon ENABLE ALWAYS TRIGGER retention_expire_before');

# a broken audit chain: CRITICAL
$node->safe_psql('postgres', q{
	ALTER TABLE retention.audit_log DISABLE TRIGGER USER;
	UPDATE retention.audit_log SET object = 'forged' WHERE id = 1;
	ALTER TABLE retention.audit_log ENABLE TRIGGER USER;
});
($rc, $line) = check('mon');
is($rc, 2, 'audit chain broken: CRITICAL');
like($line, qr/audit chain broken/, "  $line");

# no privilege, no database: UNKNOWN
($rc, $line) = check('nobody');
is($rc, 3, 'a role outside retention_auditor: UNKNOWN');
like($line, qr/^RETENTION UNKNOWN - cannot read retention.metrics: ERROR:  permission denied for view metrics$/, "  $line");
{
	my ($out, $err);
	IPC::Run::run(['tools/check_retention', '-d', $node->connstr('nosuchdb') . ' user=mon'],
		'>', \$out, '2>', \$err);
	chomp $out;
	is($? >> 8, 3, 'no such database: UNKNOWN');
	like($out, qr/^RETENTION UNKNOWN - cannot read retention.metrics: .*nosuchdb/, "  $out");
}
($rc, $line) = check('mon', '-w', 'soon');
is($rc, 3, 'a bad threshold: UNKNOWN');

# --- the postgres_exporter queries file ----------------------------------
open my $fh, '<', 'contrib/postgres_exporter/queries.yaml' or die "queries.yaml: $!";
my (%queries, @order, $cur, $in_query);
while (my $l = <$fh>)
{
	next if $l =~ /^\s*#/ || $l =~ /^\s*$/;
	if ($l =~ /^(\w+):\s*$/) { $cur = $1; push @order, $cur; $in_query = 0; next; }
	if ($l =~ /^  query: \|\s*$/) { $in_query = 1; next; }
	if ($l =~ /^  metrics:\s*$/) { $in_query = 0; next; }
	if ($in_query && $l =~ /^    (.*)$/) { $queries{$cur}{sql} .= "$1\n"; next; }
	if ($l =~ /^    - (\w+):\s*$/) { push @{ $queries{$cur}{columns} }, $1; next; }
	if ($l =~ /^        usage: "(\w+)"/) { push @{ $queries{$cur}{usage} }, $1; next; }
	if ($l =~ /^        description: "/) { next; }
	die "queries.yaml: unexpected line: $l";
}
close $fh;
is_deeply(\@order, ['retention_table', 'retention'], 'queries.yaml: two queries');
for my $q (@order)
{
	my $sql = $queries{$q}{sql};
	my $out = $node->safe_psql('postgres', "SET ROLE mon; COPY ($sql) TO STDOUT WITH (FORMAT csv, HEADER)");
	my ($header, @rows) = split /\n/, $out;
	is($header, join(',', @{ $queries{$q}{columns} }), "$q: its columns are those it declares");
	ok(@rows >= 1, "$q: at least one row");
	for my $i (0 .. $#{ $queries{$q}{columns} })
	{
		next if $queries{$q}{usage}[$i] eq 'LABEL';
		my @bad = grep { (split /,/)[$i] !~ /^(-?[0-9.e+]+|NaN)$/ } @rows;
		is(scalar(@bad), 0, "$q: $queries{$q}{columns}[$i] is a number in every row");
	}
}

# --- postgres_exporter itself, where installed ----------------------------
SKIP:
{
	my $exporter = '/usr/bin/prometheus-postgres-exporter';
	skip 'prometheus-postgres-exporter is not installed', 3 unless -x $exporter;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $host = $node->host;
	local $ENV{DATA_SOURCE_NAME} = "host=$host port=" . $node->port . " user=mon dbname=postgres sslmode=disable";
	my $h = IPC::Run::start([$exporter, "--web.listen-address=127.0.0.1:$port",
		'--extend.query-path=contrib/postgres_exporter/queries.yaml',
		'--disable-default-metrics', '--disable-settings-metrics'],
		'>&', \my $eout);
	my $body = '';
	for (1 .. 150)
	{
		my $r = HTTP::Tiny->new(timeout => 30)->get("http://127.0.0.1:$port/metrics");
		$body = $r->{content} // '';
		last if $r->{success} && $body =~ /^retention_audit_rows/m;
		sleep 0.2;
	}
	$h->kill_kill;
	like($body, qr/^retention_table_overdue_rows\{relation="cdr_mon",server="[^"]*"\} 0$/m,
		'postgres_exporter: retention_table_overdue_rows for cdr_mon')
		or diag("exporter output: $eout\nscraped: $body");
	like($body, qr/^retention_audit_chain_valid\{server="[^"]*"\} 0$/m,
		'postgres_exporter: retention_audit_chain_valid is 0 (the chain was broken above)');
	like($body, qr/^retention_last_sweep_age_seconds\{server="[^"]*"\} \d/m,
		'postgres_exporter: retention_last_sweep_age_seconds');
}

done_testing();
