# The README's tour runs as printed (issue 19, item 4): the ```sql block of
# "## A tour on a CDR table" is cut into statements, each run on a fresh
# database with psql -q, and what psql prints for it (errors and notices,
# then results) must be the "-- " lines right under it in the README.  A
# statement with no such lines must print nothing.  Also: every example
# `input` → `output` of "## Generalization, type by type" in
# docs/anonymize.md is what anonymize(input::type, 'generalize') returns.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

open my $fh, '<', 'README.md' or die "README.md: $!";
my @readme = <$fh>;
close $fh;
chomp @readme;

# the tour's block
my ($in_section, $in_block, @block);
for (@readme)
{
	if (/^## /) { $in_section = ($_ eq '## A tour on a CDR table'); next; }
	next unless $in_section;
	if (!$in_block && $_ eq '```sql') { $in_block = 1; next; }
	if ($in_block && $_ eq '```') { last; }
	push @block, $_ if $in_block;
}
ok(@block > 20, 'the tour block is found (' . scalar(@block) . ' lines)');

# statements, each with the output lines under it
my (@stmts, $cur, $collecting);
for my $l (@block)
{
	if ($collecting)
	{
		if ($l =~ /^-- ?(.*)$/) { push @{ $stmts[-1]{expected} }, $1; next; }
		$collecting = 0;
	}
	next if !defined $cur && ($l =~ /^\s*$/ || $l =~ /^--/);
	$cur .= "$l\n";
	(my $code = $l) =~ s/\s+--\s.*$//;
	if ($code =~ /;\s*$/)
	{
		push @stmts, { sql => $cur, expected => [] };
		$cur = undef;
		$collecting = 1;
	}
}
ok(!defined $cur, 'every statement of the tour ends with a semicolon');

my $node = PostgreSQL::Test::Cluster->new('tour');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'retention'\nretention.enabled = off");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE tour');
$node->safe_psql('tour', 'CREATE EXTENSION retention CASCADE');

for my $s (@stmts)
{
	my ($stdout, $stderr);
	IPC::Run::run([ 'psql', '-X', '-q', '-d', $node->connstr('tour'), '-c', $s->{sql} ],
		'>', \$stdout, '2>', \$stderr);
	my @got = map { s/\s+$//r } split(/\n/, $stderr . $stdout);
	# a sweep's duration is the one thing that may differ from a run to another
	s/ in (less than a second|[0-9.]+ s)$/ in less than a second/ for @got;
	my @want = map { s/\s+$//r } @{ $s->{expected} };
	(my $first = $s->{sql}) =~ s/\n.*//s;
	is(join("\n", @got), join("\n", @want), "tour: $first")
		or diag("what psql printed, to paste under the statement:\n" . join("\n", map { "-- $_" =~ s/\s+$//r } @got));
}

# the generalization examples
open $fh, '<', 'docs/anonymize.md' or die "docs/anonymize.md: $!";
my @anonymize = <$fh>;
close $fh;
chomp @anonymize;
my ($in_gen, $type, $n) = (0, undef, 0);
for (@anonymize)
{
	if (/^##? /) { $in_gen = ($_ eq '## Generalization, type by type'); next; }
	next unless $in_gen;
	$type = $1 if /^\*\*(\w+)\*\*/;
	next unless defined $type;
	while (/`([^`]+)` → `([^`]+)`/g)
	{
		my ($in, $out) = ($1, $2);
		my ($rc, $got, $err) = $node->psql('tour',
			"SELECT retention.anonymize(" . quote($in) . "::retention.$type, 'generalize')");
		is($got . $err, $out, "generalize: $type $in");
		$n++;
	}
}
ok($n >= 10, "$n generalization examples checked");

sub quote { my $v = shift; $v =~ s/'/''/g; return "'$v'"; }

done_testing();
