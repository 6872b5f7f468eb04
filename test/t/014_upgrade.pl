# The upgrade path: a database created under the released 1.0, with
# protected tables, holds, consents, keys, a purpose-bound view and audit
# rows, is brought to the current version by ALTER EXTENSION ... UPDATE.
# Afterwards its extension objects equal those of a fresh install (functions
# with their bodies, privileges and settings, tables, views, types, casts,
# event triggers, the objects protect() and expose() create), and its data,
# holds, consents, keys and audit chain are what they were.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'retention'\nretention.enabled = off");
$node->start;

my $current = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'retention'});
isnt($current, '1.0', "the current version ($current) is past the released 1.0");
like($node->safe_psql('postgres',
		q{SELECT string_agg(version, ',' ORDER BY version) FROM pg_available_extension_versions
		   WHERE name = 'retention'}), qr/^1\.0,/, '1.0 stays installable');

# what both databases get: the same tables, protected the same way
my $setup = q{
	CREATE SCHEMA "Telco ops";
	CREATE TABLE "Telco ops"."CDR 2026" (
		id		bigint PRIMARY KEY,
		caller	retention.msisdn(law_enforcement, billing),
		imei	retention.imei(law_enforcement),
		cell	retention.cell(network_security),
		sip		retention.ident(marketing),
		ended_at timestamptz
	);
	INSERT INTO "Telco ops"."CDR 2026"
	SELECT i, '+336' || lpad(i::text, 8, '0'), '490154203237518',
		   '208-01-' || i || '-' || (i * 7), 'sip:' || i || '@example.net',
		   now() - i * interval '1 day'
	  FROM generate_series(1, 500) i;
	SELECT retention.protect('"Telco ops"."CDR 2026"', 'ended_at', subscriber => 'caller');
	SELECT retention.set_method('"Telco ops"."CDR 2026"', 'cell', 'generalize');
	CREATE TABLE cdr_part (caller retention.msisdn(law_enforcement), ended_at timestamptz)
		PARTITION BY RANGE (ended_at);
	CREATE TABLE cdr_part_old PARTITION OF cdr_part FOR VALUES FROM ('2000-01-01') TO ('2100-01-01');
	SELECT retention.protect('cdr_part', 'ended_at');
	SELECT retention.expose('"Telco ops"."CDR 2026"', 'billing', 'upgrade_billing');
};

$node->safe_psql('postgres', 'CREATE ROLE upgrade_billing');
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', q{CREATE EXTENSION retention VERSION '1.0' CASCADE});
is($node->safe_psql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'retention'}),
	'1.0', 'installed as 1.0');
$node->safe_psql('old', $setup);
$node->safe_psql('old', q{
	SELECT retention.set_window('network_security', '2 months');
	SELECT retention.hold('"Telco ops"."CDR 2026"', '33600000007', '2000-01-01', now(),
						  'judicial_request', 'PV-UPGRADE', now() + interval '1 month');
	-- 1.0 took a quick freeze without its authority, for any term
	SELECT retention.hold('"Telco ops"."CDR 2026"', '33600000009', '2000-01-01', now(),
						  'quick_freeze', 'QF-UPGRADE', now() + interval '2 years');
	SELECT retention.grant_consent('33600000008', now() + interval '1 month', now() + interval '1 year');
	SELECT retention.rotate_key();
	CALL retention.sweep();
});

# what must survive the upgrade
my %kept = (
	data => q{SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM "Telco ops"."CDR 2026" t},
	types => q{SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
				 FROM pg_attribute WHERE attrelid = '"Telco ops"."CDR 2026"'::regclass AND attnum > 0},
	# (but the row the upgrade writes to say which regime it keeps)
	audit => q{SELECT count(*) || ' ' || string_agg(encode(hash, 'hex'), ',' ORDER BY id) FROM retention.audit_log WHERE action <> 'set_regime' OR details->>'why' IS NULL},
	holds => q{SELECT string_agg(concat_ws(':', id, relid::regclass, subscriber, reason, reference, released_at), ',' ORDER BY id)
				 FROM retention.hold},
	consents => q{SELECT string_agg(concat_ws(':', subscriber, valid_until, contract_end), ',' ORDER BY subscriber)
					FROM retention.consent},
	policy => q{SELECT string_agg(purpose || '=' || coalesce("window"::text, '-'), ',' ORDER BY purpose)
				  FROM retention.policy},
	pseudonym => q{SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash')},
	sweeps => q{SELECT count(*) FROM retention.sweep_log},
);
my %before = map { $_ => $node->safe_psql('old', $kept{$_}) } keys %kept;

$node->safe_psql('old', 'ALTER EXTENSION retention UPDATE');
is($node->safe_psql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'retention'}),
	$current, "ALTER EXTENSION UPDATE brings 1.0 to $current");

for my $k (sort keys %kept)
{
	is($node->safe_psql('old', $kept{$k}), $before{$k}, "$k survive the upgrade");
}
is($node->safe_psql('old', 'SELECT valid FROM retention.verify_audit_log()'), 't',
	'the audit chain verifies after the upgrade');
# the law 1.0 enforced stays in force until an admin switches
is($node->safe_psql('old', 'SELECT retention.regime_in_force()'), 'fr-2004',
	'an upgraded database keeps regime fr-2004');
is($node->safe_psql('old', q{SELECT details->>'why' FROM retention.audit_log WHERE action = 'set_regime'}),
	'upgraded from 1.0, which enforces fr-2004', 'the upgrade audits the regime it keeps');

# a fresh install of the current version, set up the same way
$node->safe_psql('postgres', 'CREATE DATABASE new');
$node->safe_psql('new', 'CREATE EXTENSION retention CASCADE');
$node->safe_psql('new', $setup);

# A canonical description of everything that belongs to the extension and
# of what protect() and expose() attach to tables: by name, never by OID.
my $describe = q{
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'retention'),
members AS (
	SELECT d.classid, d.objid, d.objsubid
	  FROM pg_depend d, ext
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT line FROM (
	-- every member, and for each kind what defines it
	SELECT pg_describe_object(m.classid, m.objid, m.objsubid) AS line FROM members m
	UNION ALL
	SELECT 'function ' || p.oid::regprocedure || ': ' || pg_get_functiondef(p.oid)
		   || ' acl=' || coalesce(p.proacl::text, '-')
	  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
	 WHERE p.prokind <> 'a'
	UNION ALL
	SELECT 'relation ' || c.oid::regclass || ' kind=' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, '-')
		   || ' rls=' || c.relrowsecurity || ' owner=' || pg_get_userbyid(c.relowner)
		   || ' cols=' || coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
									  || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
									  || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
									  || coalesce(' acl=' || a.attacl::text, ''), ', ' ORDER BY a.attnum)
								  FROM pg_attribute a
								  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
								 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
		   || coalesce(' view=' || pg_get_viewdef(c.oid), '')
	  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
	UNION ALL
	SELECT 'constraint ' || con.conrelid::regclass || '.' || con.conname || ': ' || pg_get_constraintdef(con.oid)
	  FROM pg_constraint con JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = con.conrelid
	UNION ALL
	SELECT 'index ' || i.indexrelid::regclass || ': ' || pg_get_indexdef(i.indexrelid)
	  FROM pg_index i JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = i.indrelid
	UNION ALL
	SELECT 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass || ' enabled=' || t.tgenabled::text || ': '
		   || pg_get_triggerdef(t.oid)
	  FROM pg_trigger t
	 WHERE NOT t.tgisinternal
	   AND (t.tgrelid IN (SELECT objid FROM members WHERE classid = 'pg_class'::regclass)
			OR t.tgfoid IN (SELECT objid FROM members WHERE classid = 'pg_proc'::regclass))
	UNION ALL
	SELECT 'event trigger ' || e.evtname || ' on ' || e.evtevent || ' enabled=' || e.evtenabled::text
		   || ' tags=' || coalesce(e.evttags::text, '-') || ' function=' || e.evtfoid::regproc
		   || ' owner=' || pg_get_userbyid(e.evtowner)
	  FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
	UNION ALL
	SELECT 'type ' || t.oid::regtype || ' kind=' || t.typtype::text || ' input=' || t.typinput::regproc
		   || ' output=' || t.typoutput::regproc || ' typmodin=' || t.typmodin::regproc
		   || ' category=' || t.typcategory::text || ' acl=' || coalesce(t.typacl::text, '-')
	  FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
	UNION ALL
	SELECT 'cast ' || c.castsource::regtype || ' -> ' || c.casttarget::regtype || ' context=' || c.castcontext::text
		   || ' method=' || c.castmethod::text || ' function=' || c.castfunc::regproc
	  FROM members m JOIN pg_cast c ON m.classid = 'pg_cast'::regclass AND c.oid = m.objid
	UNION ALL
	SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, '-')
	  FROM pg_namespace n WHERE n.nspname = 'retention'
	UNION ALL
	SELECT 'config dump ' || cfg::regclass || coalesce(' where ' || nullif(cond, ''), '')
	  FROM pg_extension e, ext, unnest(e.extconfig, e.extcondition) AS u(cfg, cond)
	 WHERE e.oid = ext.oid
	UNION ALL
	-- what protect() and expose() made outside the extension's schema
	SELECT 'protected table trigger ' || t.tgname || ' on ' || t.tgrelid::regclass || ' enabled=' || t.tgenabled::text
		   || ': ' || pg_get_triggerdef(t.oid)
	  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	 WHERE NOT t.tgisinternal AND c.relnamespace <> 'retention'::regnamespace
	   AND t.tgfoid IN (SELECT objid FROM members WHERE classid = 'pg_proc'::regclass)
	UNION ALL
	SELECT 'exposure view ' || c.oid::regclass || ' acl=' || coalesce(c.relacl::text, '-')
		   || ' options=' || coalesce(c.reloptions::text, '-') || ' view=' || pg_get_viewdef(c.oid)
	  FROM pg_class c
	 WHERE c.relkind = 'v' AND c.relnamespace <> 'retention'::regnamespace
	   AND c.relnamespace <> 'pg_catalog'::regnamespace
	   AND c.relnamespace <> 'information_schema'::regnamespace
) all_lines
ORDER BY line COLLATE "C"
};

my $old_desc = $node->safe_psql('old', $describe);
my $new_desc = $node->safe_psql('new', $describe);
cmp_ok(length($new_desc), '>', 10000, 'the description covers the extension');
if ($old_desc eq $new_desc)
{
	pass('the upgraded database equals a fresh install');
}
else
{
	# show what differs, line by line
	my %o = map { $_ => 1 } split /\n/, $old_desc;
	my %n = map { $_ => 1 } split /\n/, $new_desc;
	diag("only after the upgrade: $_") for grep { !$n{$_} } sort keys %o;
	diag("only in a fresh install: $_") for grep { !$o{$_} } sort keys %n;
	fail('the upgraded database equals a fresh install');
}

# and it behaves: a late row is not kept, the hold holds, a sweep works
$node->safe_psql('old', q{INSERT INTO "Telco ops"."CDR 2026" VALUES
	(9000, '33650009000', NULL, NULL, NULL, now() - interval '2 years')});
is($node->safe_psql('old', q{SELECT count(*) FROM "Telco ops"."CDR 2026" WHERE id = 9000}), '0',
	'a late row is not kept after the upgrade');
$node->safe_psql('old', 'CALL retention.sweep()');
is($node->safe_psql('old', q{SELECT count(*) FROM "Telco ops"."CDR 2026" WHERE caller = '33600000007'}), '1',
	'the hold placed under 1.0 still holds');
# a 1.0 quick freeze is a national order, its term untouched (no year's
# bound: the order sets it); a 1.0 hold's renewals are recorded like any
is($node->safe_psql('old', q{SELECT concat_ws(' ', order_kind, until > now() + interval '23 months', coalesce(authority, '-'))
	FROM retention.hold WHERE reference = 'QF-UPGRADE'}), 'national t -', 'a 1.0 quick freeze after the upgrade');
is($node->safe_psql('old', q{SELECT count(*) FROM "Telco ops"."CDR 2026" WHERE caller = '33600000009'}), '1',
	'and it still holds');
$node->safe_psql('old', q{SELECT retention.extend_hold(id, now() + interval '2 months', 'PV-UPGRADE-2')
	FROM retention.hold WHERE reference = 'PV-UPGRADE'});
is($node->safe_psql('old', q{SELECT h.extensions || ' ' || r.reference FROM retention.hold h
	JOIN retention.hold_renewal r ON r.hold_id = h.id WHERE h.reference = 'PV-UPGRADE'}), '1 PV-UPGRADE-2',
	'a 1.0 hold is extended after the upgrade');
is($node->safe_psql('old', q{SELECT count(*) FROM retention.report() WHERE overdue_rows > 0}), '0',
	'nothing is overdue after a sweep');
is($node->safe_psql('old', 'SELECT valid FROM retention.verify_audit_log()'), 't',
	'the audit chain verifies after a sweep under the new version');
is($node->safe_psql('new', 'SELECT retention.regime_in_force()'), 'fr-2025',
	'a fresh install enforces regime fr-2025');

# 1.0's rules stay until an admin switches: a cell kept for
# law_enforcement is kept a year under fr-2004; the switch's dry run says
# what fr-2025 changes (a cell reads as national_security, kept only
# under a decree), the switch erases nothing, the next sweep does
$node->safe_psql('old', q{
	CREATE TABLE le_cells (cell retention.cell(law_enforcement), ended_at timestamptz);
	SELECT retention.protect('le_cells', 'ended_at');
	INSERT INTO le_cells VALUES ('208-01-1-1', now() - interval '6 months');
});
is($node->safe_psql('old', 'SELECT count(cell) FROM le_cells'), '1',
	'under fr-2004 a law_enforcement cell is kept');
is($node->safe_psql('old', q{SELECT concat_ws(' ', rules_before, rules_after, overdue_before, overdue_after)
	FROM retention.set_regime('fr-2025', dry_run => true) WHERE "table" = 'le_cells'::regclass}),
	'{law_enforcement} {national_security} 0 1', 'the dry run of the switch says what changes');
is($node->safe_psql('old', 'SELECT retention.regime_in_force()'), 'fr-2004', 'a dry run switches nothing');
$node->safe_psql('old', q{SELECT count(*) FROM retention.set_regime('fr-2025')});
is($node->safe_psql('old', 'SELECT count(cell) FROM le_cells'), '1', 'the switch itself erases nothing');
$node->safe_psql('old', q{CALL retention.sweep('le_cells')});
is($node->safe_psql('old', 'SELECT count(cell) FROM le_cells'), '0',
	'the next sweep applies fr-2025: no decree, no national-security cell');
is($node->safe_psql('old', 'SELECT valid FROM retention.verify_audit_log()'), 't',
	'the audit chain verifies after the switch');

# 1.0 accepted an until of infinity (a hold placed with no end) and of
# -infinity (by a direct INSERT): after the upgrade they say the same with a
# finite end or none, audited, and restore under the new trigger
$node->safe_psql('postgres', 'CREATE DATABASE old_inf');
$node->safe_psql('old_inf', q{
	CREATE EXTENSION retention VERSION '1.0' CASCADE;
	CREATE TABLE cdr (caller retention.msisdn(billing, law_enforcement), ended_at timestamptz);
	SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
	SELECT retention.hold('cdr', '33600000001', '2000-01-01', now(), 'quick_freeze', 'QF-INF', 'infinity');
	SELECT retention.hold('cdr', '33600000002', '2000-01-01', now(), 'billing_dispute', 'INV-INF', 'infinity');
	INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until)
		VALUES ('cdr', '33600000003', '2000-01-01', now(), 'judicial_request', 'PV-NEGINF', '-infinity');
});
$node->safe_psql('old_inf', 'ALTER EXTENSION retention UPDATE');
is($node->safe_psql('old_inf', q{SELECT string_agg(reference || '=' || coalesce((until = placed_at)::text, 'open'), ',' ORDER BY id)
	FROM retention.hold}), 'QF-INF=open,INV-INF=open,PV-NEGINF=true',
	'infinite ends become until released, -infinity the time the hold was placed');
is($node->safe_psql('old_inf', q{SELECT count(*) FROM retention.audit_log WHERE action = 'bound_hold'}), '3',
	'each one audited');
$node->safe_psql('old_inf', q{INSERT INTO cdr VALUES ('33600000001', now() - interval '2 years'),
	('33600000003', now() - interval '2 years')});
is($node->safe_psql('old_inf', q{SELECT string_agg(caller::text, ',' ORDER BY caller) FROM cdr}), '33600000001',
	'the open-ended hold holds, the ended one does not');

$node->stop;
done_testing();
