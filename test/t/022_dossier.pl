# The compliance dossier (issue 19, item 2): tools/dossier, run as a login
# member of retention_auditor, writes an HTML document and its PDF and
# records both hashes in the audit log.  The HTML names no subscriber of the
# data, holds the key figures, and its charts are drawn; headless Chromium
# renders it (--dump-dom: the figures are in the page's text, the SVG has
# its bars) and pdftoppm turns the PDF into a PNG, kept in the test's
# directory as dossier-1.png to look at.  Without chromium and pdftoppm the
# browser part is skipped, unless RETENTION_REQUIRE_BROWSER=1 (make
# test-dossier), where that is a failure.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Temp qw(tempdir);
use Digest::SHA qw(sha256_hex);

my $node = PostgreSQL::Test::Cluster->new('dossier');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'retention'\nretention.enabled = off");
$node->start;

# subscribers whose numbers must not appear anywhere in the dossier
my @subscribers = map { sprintf('336%08d', 11110000 + $_) } 0 .. 6;
my $list = join(',', map { "'+$_'" } @subscribers);
$node->safe_psql('postgres', qq{
	CREATE EXTENSION retention CASCADE;
	CREATE ROLE auditor LOGIN IN ROLE retention_auditor;
	CREATE TABLE cdr (id int, caller retention.msisdn(billing, law_enforcement),
					  callee retention.msisdn(billing), cell retention.cell(law_enforcement, network_security),
					  promo retention.cell(marketing), ended_at timestamptz, duration_s int);
	INSERT INTO cdr SELECT i, (ARRAY[$list])[1 + i % 7], (ARRAY[$list])[1 + (i + 3) % 7],
						   '208-01-77-' || i, '208-01-78-' || i, now() - i * interval '5 days', i
	  FROM generate_series(1, 150) i;
	SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
	SELECT retention.set_method('cdr', 'cell', 'generalize');
	SELECT retention.hold('cdr', '+$subscribers[2]', now() - interval '3 years', now(), 'judicial_request',
						  'PV 2026/0117', now() + interval '6 months');
	SELECT retention.hold('cdr', '+$subscribers[3]', now() - interval '3 years', now(), 'billing_dispute',
						  'INV-2026-0042');
	SELECT retention.release(2, 'dispute settled');
	SELECT retention.grant_consent('+$subscribers[4]', now() + interval '6 months', now() + interval '2 years');
	SELECT retention.grant_consent('+$subscribers[5]', now() + interval '6 months', now() + interval '2 years');
	SELECT retention.grant_consent('+$subscribers[6]', now() + interval '6 months', now() + interval '2 years');
	SELECT retention.withdraw_consent('+$subscribers[6]');
	SELECT retention.set_window('network_security', '2 months');
});
# a table whose name is markup: the dossier escapes it
$node->safe_psql('postgres', q{
	CREATE TABLE "<script>alert('x')</script>" (sip retention.ident(marketing), ended_at timestamptz);
	INSERT INTO "<script>alert('x')</script>" VALUES ('sip:someone@example.net', now());
	SELECT retention.protect('"<script>alert(''x'')</script>"', 'ended_at');
});
$node->safe_psql('postgres', 'CALL retention.sweep()');
# a second run, later: a table loaded since, and a copy outside retention
$node->safe_psql('postgres', q{
	CREATE TABLE cdr_copy AS SELECT caller, ended_at FROM cdr;
	SELECT retention.set_window('network_security', '1 month');
});
$node->safe_psql('postgres', 'CALL retention.sweep()');

my $dir = $ENV{TESTDIR} // tempdir(CLEANUP => 1);
my $base = "$dir/dossier";
my $browser = (grep { -x "/usr/bin/$_" } qw(chromium chromium-browser google-chrome))[0];
my $have = defined $browser && -x '/usr/bin/pdftoppm';
my $require = $ENV{RETENTION_REQUIRE_BROWSER};
ok($have, 'chromium and pdftoppm are installed') if $require;

my ($out, $err);
my $ok = IPC::Run::run(['tools/dossier', '-o', $base, ($have ? () : '--no-pdf'), '-d',
		$node->connstr('postgres') . ' user=auditor'], '>', \$out, '2>', \$err);
ok($ok, 'tools/dossier, as a member of retention_auditor') or diag("stdout: $out\nstderr: $err");
like($out, qr/^\Q$base\E\.html  sha256 [0-9a-f]{64}$/m, '  prints the HTML and its hash');

open my $fh, '<:encoding(UTF-8)', "$base.html" or die "$base.html: $!";
my $html = do { local $/; <$fh> };
close $fh;
my $sha = do { open my $b, '<:raw', "$base.html" or die; local $/; sha256_hex(<$b>) };

# recorded
my $rec = $node->safe_psql('postgres', q{
	SELECT actor || ' ' || action || ' ' || (details->>'sha256') || ' ' || (details ? 'generated_at')
	  FROM retention.audit_log WHERE action = 'dossier'});
is($rec, "auditor dossier $sha true", 'the HTML\'s SHA-256 is in the audit log, by the auditor');
is($node->safe_psql('postgres', 'SELECT valid FROM retention.verify_audit_log()'), 't', '  the chain still verifies');

# no subscriber, in any form
for my $s (@subscribers)
{
	unlike($html, qr/\Q$s\E/, "subscriber $s does not appear");
	(my $national = $s) =~ s/^33/0/;
	unlike($html, qr/\Q$national\E/, "  nor as $national");
}

# self-contained: no script, no external resource
unlike($html, qr/<script|<link |src="|url\(/i, 'no script, no external resource');
like($html, qr/^<!DOCTYPE html>/, 'an HTML document');

# the key figures, from the database itself
my %fig;
for my $row (split /\n/, $node->safe_psql('postgres', q{
	SELECT "column" || '|' || rows_in_clear || '|' || overdue_rows || '|' || held_rows
	  FROM retention.report() WHERE kind = 'tagged' AND "table" = 'cdr'::regclass}))
{
	my ($c, @v) = split /\|/, $row;
	$fig{$c} = \@v;
}
my $copy_clear = $node->safe_psql('postgres',
	q{SELECT rows_in_clear FROM retention.report() WHERE kind = 'unprotected copy'});
my ($head_id, $head_hash) = split /\|/, $node->safe_psql('postgres',
	q{SELECT head_id || '|' || head_hash FROM retention.verify_audit_log()});
# the head the dossier shows is the one before its own record
$head_id -= 1;
$head_hash = $node->safe_psql('postgres', "SELECT encode(hash, 'hex') FROM retention.audit_log WHERE id = $head_id");

sub text_of { my $h = shift; $h =~ s/<style.*?<\/style>//s; $h =~ s/<title>.*?<\/title>//gs; $h =~ s/<[^>]+>/ /g; $h =~ s/&amp;/&/g; $h =~ s/&#39;/'/g; $h =~ s/\s+/ /g; return $h; }

sub check_figures
{
	my ($doc, $what) = @_;
	my $text = text_of($doc);
	like($text, qr/Retention compliance dossier/, "$what: the title");
	like($text, qr/generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by auditor/, "$what: dated, and by whom");
	like($text, qr/CPCE L34-1 IV \S{1,8}1, R10-14 I to III and L34-2/, "$what: the legal bases");
	like($text, qr/network_security may keep\s+1 mon/, "$what: the window in force");
	like($text, qr/connection must keep 1 year 1 year/, "$what: a floor");
	for my $c (sort keys %fig)
	{
		my ($clear, $over, $held) = @{ $fig{$c} };
		like($text, qr/ public\.cdr \Q$c\E [^|]*? \Q$clear\E [0-9-]+(?: [0-9:]+)? \Q$over\E \Q$held\E /,
			"$what: $c: $clear rows in clear, $over overdue, $held held");
	}
	like($text, qr/ 1 public\.cdr judicial_request PV 2026\/0117 [-0-9]+ to [-0-9]+ [-0-9]+ [-0-9]+ by \S+ in force /, "$what: the hold in force");
	like($text, qr/ 2 public\.cdr billing_dispute INV-2026-0042 [-0-9]+ to [-0-9]+ - [-0-9]+ by \S+ released [-0-9]+ by \S+: dispute settled /, "$what: the released hold");
	like($text, qr/ active 2 expired 0 withdrawn 1 /, "$what: consents counted by state");
	like($text, qr/Hash chain verification: valid/, "$what: the audit chain verified");
	like($text, qr/Head: row \Q$head_id\E , SHA-256 \Q$head_hash\E /, "$what: the chain's head and hash");
	like($text, qr/public\.cdr_copy unprotected copy caller \Q$copy_clear\E table holding/, "$what: the unprotected copy, $copy_clear values in clear");
	like($text, qr/ 2 \S+ \S+ 2 done /, "$what: the second sweep run, over both tables");
}
check_figures($html, 'HTML');

# the charts: SVG with one bar per tagged column, and the sweep charts
my @svgs = $html =~ /(<svg\b.*?<\/svg>)/gs;
is(scalar(@svgs), 3, 'three SVG charts');
my $bars = () = $svgs[0] =~ /<rect class="bar/g;
is($bars, scalar(keys %fig) + 1, 'the age chart has a bar per tagged column');
like($html, qr/public\.&quot;&lt;script&gt;alert\(&#39;x&#39;\)&lt;\/script&gt;&quot;/, 'a table name that is markup is escaped');
my $marks = () = $svgs[0] =~ /<line class="mark"/g;
ok($marks >= 4, 'and the windows marked');
like($svgs[0], qr/<rect class="bar over"[^>]*width="[1-9]/, 'a held column shows past its window');
is(() = $svgs[1] =~ /<rect class="bar"/g, 2, 'the sweep chart has a bar per run');

SKIP:
{
	skip 'chromium or pdftoppm not installed', 8 unless $have;
	like($out, qr/^\Q$base\E\.pdf  sha256 [0-9a-f]{64}$/m, 'the PDF, and its hash');
	my $pdfsha = do { open my $b, '<:raw', "$base.pdf" or die; local $/; sha256_hex(<$b>) };
	is($node->safe_psql('postgres', q{SELECT details->>'pdf_sha256' FROM retention.audit_log WHERE action = 'dossier'}),
		$pdfsha, '  recorded too');

	my $profile = tempdir(CLEANUP => 1);
	my ($dom, $derr);
	IPC::Run::run([$browser, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
			'--disable-component-update', '--disable-sync', '--no-first-run', "--user-data-dir=$profile",
			'--dump-dom', "file://$base.html"], '>', \$dom, '2>', \$derr);
	like($dom, qr/<svg/, 'chromium renders the page') or diag($derr);
	check_figures($dom, 'rendered');
	my $rendered_bars = () = $dom =~ /<rect class="bar/g;
	is($rendered_bars, scalar(keys %fig) + 1 + 2 + 1, 'the rendered charts keep their bars');
	unlike($dom, qr/<script/, 'and no script element');

	ok(IPC::Run::run(['pdftoppm', '-png', '-r', '60', "$base.pdf", "$dir/dossier"]), 'pdftoppm');
	my @pngs = sort glob("$dir/dossier-*.png");
	ok(@pngs >= 1, scalar(@pngs) . ' pages as PNG');
	ok(-s $pngs[0] > 10000, "  the first page is not blank ($pngs[0], " . (-s $pngs[0]) . ' bytes)');
	my $pdftext;
	IPC::Run::run(['pdftotext', "$base.pdf", '-'], '>', \$pdftext);
	like($pdftext // '', qr/Retention compliance dossier/, 'the PDF holds the text');
}

# a plain role gets nothing
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
my ($rc, $o, $e) = $node->psql('postgres', 'SELECT retention.dossier()', extra_params => ['-U', 'plain']);
like($e, qr/permission denied for function dossier/, 'a plain role cannot make a dossier');

done_testing();
