/*-------------------------------------------------------------------------
 *
 * policy.c
 *	  The legal regime in force, cached per backend: each purpose's rule,
 *	  which rule a tagged purpose reads as for each type, the dated legal
 *	  bases (national-security decrees), and the cutoffs at a moment.
 *
 * The regimes are data (retention.regime, retention.rule,
 * retention.rule_alias: src/retention--1.0--1.1.sql); this file reads the
 * one in force through retention.policy and retention._coverage(), so that
 * SQL and C share one definition of which rule governs a column.  A
 * database still at version 1.0 (running this library before ALTER
 * EXTENSION UPDATE) has neither: its policy reads as 1.0's rules, which
 * are regime fr-2004's.
 *
 * Not here: what a row's facts make of the rules (expiry.c), the tables
 * (expiry.c's relation cache), holds and consents (expiry.c).
 *
 * Copyright (c) 2026, retention developers
 *
 * src/policy.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "policy.h"

static bool policy_valid = false;
static RetentionRule rules[RETENTION_NUM_PURPOSES];

/*
 * coverage[contract][kind][p]: the rule (a purpose) that purpose p of a
 * column of type kind reads as, or -1 for none, in a communication table
 * (contract false) or a subscriber table (true)
 */
static int8 coverage[2][RT_NUM_KINDS][RETENTION_NUM_PURPOSES];

/* the dated legal bases of each purpose whose rule has a decree condition */
typedef struct BasisPeriod
{
	int			purpose;
	TimestampTz from;			/* inclusive */
	TimestampTz to;				/* exclusive */
} BasisPeriod;

static BasisPeriod *bases = NULL;
static int	nbases = 0;

/* the code of the regime in force, or NULL in a database still at 1.0 */
static char *regime_code = NULL;

/* the cutoffs of the last moment asked for */
static bool cutoffs_valid = false;
static RetentionCutoffs last_cutoffs;

/* the catalog tables whose change flushes everything cached */
#define NUM_CATALOG_RELS 7
static Oid	catalog_rels[NUM_CATALOG_RELS];

static MemoryContext PolicyContext = NULL;

void
retention_policy_invalidate(void)
{
	policy_valid = false;
	cutoffs_valid = false;
}

bool
retention_policy_catalog_rel(Oid relid)
{
	int			i;

	for (i = 0; i < NUM_CATALOG_RELS; i++)
		if (OidIsValid(catalog_rels[i]) && catalog_rels[i] == relid)
			return true;
	return false;
}

static Oid
catalog_rel(const char *name, bool missing_ok)
{
	Oid			relid = get_relname_relid(name, retention_schema_oid(false));

	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", RETENTION_SCHEMA, name),
				 errhint("The retention extension may be damaged; reinstall it.")));
	return relid;
}

static int
kind_lookup(const char *name)
{
	int			k;

	for (k = 0; k < RT_NUM_KINDS; k++)
		if (strcmp(name, retention_type_names[k]) == 0)
			return k;
	return -1;
}

static void
run_query(const char *sql)
{
	int			ret = SPI_execute(sql, true, 0);

	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
}

static Interval *
interval_col(HeapTuple tup, TupleDesc desc, int col, bool *has)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	*has = !isnull;
	return isnull ? NULL : DatumGetIntervalP(d);
}

/* the rules of the regime in force (a 1.1 catalog) */
static void
load_rules(void)
{
	uint64		i;

	run_query("SELECT purpose, \"window\", ceiling, floor, kind, anchor, condition, legal_basis "
			  "FROM retention.policy");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int			p = purpose_lookup(SPI_getvalue(tup, desc, 1));
		RetentionRule *r;
		Interval   *iv;
		char	   *anchor = SPI_getvalue(tup, desc, 6);
		char	   *condition = SPI_getvalue(tup, desc, 7);

		if (p < 0)
			continue;
		r = &rules[p];
		r->in_force = true;
		if ((iv = interval_col(tup, desc, 2, &r->has_window)) != NULL)
			r->window = *iv;
		if ((iv = interval_col(tup, desc, 3, &r->has_ceiling)) != NULL)
			r->ceiling = *iv;
		if ((iv = interval_col(tup, desc, 4, &r->has_floor)) != NULL)
			r->floor = *iv;
		/* a window is never longer than the ceiling nor shorter than the floor */
		if (!r->has_window && r->has_ceiling)
		{
			r->window = r->ceiling;
			r->has_window = true;
		}
		r->must_keep = strcmp(SPI_getvalue(tup, desc, 5), "must_keep") == 0;
		r->citation = MemoryContextStrdup(PolicyContext, SPI_getvalue(tup, desc, 8));
		r->billing_anchor = strcmp(anchor, "billing_anchor") == 0;
		if (strcmp(condition, "consent") == 0)
			r->condition = RULE_CONSENT;
		else if (strcmp(condition, "location_consent") == 0)
			r->condition = RULE_LOCATION_CONSENT;
		else if (strcmp(condition, "decree") == 0)
			r->condition = RULE_DECREE;
		else if (strcmp(condition, "originated") == 0)
			r->condition = RULE_ORIGINATED;
		else
			r->condition = RULE_NONE;
		/* without a window, kept only under a condition of consent */
		if (!r->has_window && r->condition != RULE_CONSENT &&
			r->condition != RULE_LOCATION_CONSENT)
			r->in_force = false;
	}

	run_query("SELECT purpose, type, table_kind, rule FROM retention._coverage()");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int			p = purpose_lookup(SPI_getvalue(tup, desc, 1));
		int			k = kind_lookup(SPI_getvalue(tup, desc, 2));
		bool		contract = strcmp(SPI_getvalue(tup, desc, 3), "subscriber") == 0;
		int			r = purpose_lookup(SPI_getvalue(tup, desc, 4));

		if (p >= 0 && k >= 0 && r >= 0 && rules[r].in_force)
			coverage[contract ? 1 : 0][k][p] = (int8) r;
	}

	run_query("SELECT retention.regime_in_force()");
	if (SPI_processed == 1)
		regime_code = MemoryContextStrdup(PolicyContext,
										  SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));

	run_query("SELECT basis, valid_from, valid_to FROM retention.legal_basis ORDER BY valid_from");
	if (SPI_processed > 0)
	{
		bases = MemoryContextAlloc(PolicyContext, sizeof(BasisPeriod) * SPI_processed);
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			int			p = purpose_lookup(SPI_getvalue(tup, desc, 1));
			bool		isnull;

			if (p < 0)
				continue;
			bases[nbases].purpose = p;
			bases[nbases].from = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
			bases[nbases].to = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
			nbases++;
		}
	}
}

/*
 * The policy of a database still at 1.0: retention.policy's windows and
 * ceilings, billing from the billing anchor, marketing under consent, every
 * purpose covering every type: regime fr-2004.
 */
static void
load_legacy_rules(void)
{
	uint64		i;
	int			k,
				p;

	run_query("SELECT purpose, \"window\", ceiling, legal_basis FROM retention.policy");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		RetentionRule *r;
		Interval   *iv;

		p = purpose_lookup(SPI_getvalue(tup, desc, 1));
		if (p < 0 || p > RETENTION_NETWORK_SECURITY)
			continue;
		r = &rules[p];
		if ((iv = interval_col(tup, desc, 3, &r->has_ceiling)) != NULL)
			r->ceiling = *iv;
		if ((iv = interval_col(tup, desc, 2, &r->has_window)) != NULL)
			r->window = *iv;
		else if (r->has_ceiling)
		{
			r->window = r->ceiling;
			r->has_window = true;
		}
		r->billing_anchor = (p == RETENTION_BILLING);
		r->condition = (p == RETENTION_MARKETING) ? RULE_CONSENT : RULE_NONE;
		r->citation = MemoryContextStrdup(PolicyContext, SPI_getvalue(tup, desc, 4));
		r->in_force = r->has_window || r->condition == RULE_CONSENT;
	}
	for (k = 0; k < RT_NUM_KINDS; k++)
		for (p = 0; p <= RETENTION_NETWORK_SECURITY; p++)
			if (rules[p].in_force)
				coverage[0][k][p] = (int8) p;
}

void
retention_policy_load(void)
{
	int			nestlevel;
	bool		current;

	if (policy_valid)
		return;
	if (PolicyContext == NULL)
		PolicyContext = AllocSetContextCreate(CacheMemoryContext,
											  "retention policy",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(PolicyContext);
	bases = NULL;
	nbases = 0;
	regime_code = NULL;
	memset(rules, 0, sizeof(rules));
	memset(coverage, -1, sizeof(coverage));

	catalog_rels[0] = catalog_rel("window_setting", false);
	catalog_rels[1] = catalog_rel("protected_table", false);
	catalog_rels[2] = catalog_rel("column_method", false);
	catalog_rels[3] = catalog_rel("rule", true);
	catalog_rels[4] = catalog_rel("rule_alias", true);
	catalog_rels[5] = catalog_rel("regime_setting", true);
	catalog_rels[6] = catalog_rel("legal_basis", true);
	current = OidIsValid(catalog_rels[3]) && OidIsValid(catalog_rels[6]);

	nestlevel = retention_pin_search_path();
	SPI_connect();
	if (current)
		load_rules();
	else
		load_legacy_rules();
	SPI_finish();
	retention_unpin_search_path(nestlevel);
	policy_valid = true;
	cutoffs_valid = false;
}

/* the regime in force, as retention.regime_in_force() says; NULL at 1.0 */
const char *
retention_regime_in_force(void)
{
	retention_policy_load();
	return regime_code;
}

const RetentionRule *
retention_rule(int purpose)
{
	Assert(purpose >= 0 && purpose < RETENTION_NUM_PURPOSES);
	retention_policy_load();
	return &rules[purpose];
}

/*
 * retention_column_rules: the rules that govern a column of type kind
 * tagged with purposes tagged, in a subscriber table (contract) or a
 * communication table.  A purpose no rule of the regime covers keeps
 * nothing.
 */
PurposeSet
retention_column_rules(RetentionTypeKind kind, PurposeSet tagged, bool contract)
{
	PurposeSet	result = 0;
	int			p;

	retention_policy_load();
	for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
		if ((tagged & PURPOSE_BIT(p)) && coverage[contract ? 1 : 0][kind][p] >= 0)
			result |= PURPOSE_BIT(coverage[contract ? 1 : 0][kind][p]);
	return result;
}

/*
 * retention_basis_covers: was a dated legal basis of purpose in force at
 * the instant at (a communication's end)?  Decided by that instant, not by
 * now: data taken in under a decree keep their term after it lapses.
 */
bool
retention_basis_covers(int purpose, TimestampTz at)
{
	int			i;

	retention_policy_load();
	for (i = 0; i < nbases; i++)
		if (bases[i].purpose == purpose && bases[i].from <= at && at < bases[i].to)
			return true;
	return false;
}

/*
 * retention_cutoffs: for each rule with a window, the latest anchor that is
 * past it at now: now - window, but never earlier than now - ceiling nor
 * later than now - floor, whatever the window says.  Rules kept only under
 * consent get DT_NOEND (nothing but the consent keeps).  Cheap when called
 * again for the same moment.
 */
void
retention_cutoffs(TimestampTz now, RetentionCutoffs *cut)
{
	int			p;
	bool		subject = (now == DT_NOEND);
	TimestampTz at = subject ? GetCurrentTransactionStartTimestamp() : now;

	retention_policy_load();
	/* a subject request's cutoffs depend on the transaction's start */
	if (!subject && cutoffs_valid && last_cutoffs.now == now)
	{
		*cut = last_cutoffs;
		return;
	}
	last_cutoffs.now = now;
	for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
	{
		const RetentionRule *r = &rules[p];
		TimestampTz c;

		if (!r->in_force || !r->has_window || (subject && !r->must_keep))
		{
			/* consent alone keeps; under a subject's request, nothing optional */
			last_cutoffs.cutoff[p] = DT_NOEND;
			continue;
		}
		c = retention_instant_shift_or(at, &r->window, false, DT_NOBEGIN);
		if (r->has_ceiling)
			c = Max(c, retention_instant_shift_or(at, &r->ceiling, false, DT_NOBEGIN));
		if (r->has_floor)
			c = Min(c, retention_instant_shift_or(at, &r->floor, false, DT_NOBEGIN));
		last_cutoffs.cutoff[p] = c;
	}
	cutoffs_valid = !subject;
	*cut = last_cutoffs;
}

/*
 * retention._cutoffs(moment timestamptz) returns jsonb: each rule's cutoff
 * at moment, as the rules apply it ({"connection": "...", ...}; a rule
 * kept only under consent is left out).  The sweep log records those of
 * each run, so that verify() can check them against the floors of the
 * regime in force at the time, whatever the rules say later.
 */
PG_FUNCTION_INFO_V1(retention_cutoffs_at);

Datum
retention_cutoffs_at(PG_FUNCTION_ARGS)
{
	RetentionCutoffs cut;
	StringInfoData buf;
	int			i;
	bool		first = true;

	retention_cutoffs(PG_GETARG_TIMESTAMPTZ(0), &cut);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < RETENTION_NUM_PURPOSES; i++)
	{
		int			p = retention_purpose_order[i];

		if (!rules[p].in_force || !rules[p].has_window)
			continue;
		appendStringInfo(&buf, "%s\"%s\": \"%s\"", first ? "" : ", ",
						 retention_purpose_names[p],
						 TIMESTAMP_NOT_FINITE(cut.cutoff[p]) ?
						 (TIMESTAMP_IS_NOBEGIN(cut.cutoff[p]) ? "-infinity" : "infinity") :
						 timestamptz_to_str(cut.cutoff[p]));
		first = false;
	}
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
