/*-------------------------------------------------------------------------
 *
 * expiry.c
 *	  The retention rules (SPEC 2): which values of a row are due, and what
 *	  becomes of them.  Also the per-backend caches the rules read: each
 *	  relation's tagged columns and protection, holds and consents.  The
 *	  regime's rules themselves are policy.c's.
 *
 * A column is kept for the rules of the regime in force that govern it
 * (policy.c reads its type modifier's purposes through the regime).  A
 * value is kept for rule p while the row's anchor for p (ended_at; for a
 * rule counted from the billing anchor, that anchor when the table has one
 * and the row a value) is later than now - window(p), window(p) never
 * longer than its ceiling nor shorter than its floor, and while the rule's
 * condition holds: a decree in force when the communication ended, the
 * operator's subscriber having originated it, or an active (marketing or
 * location) consent, which alone keeps what is kept under consent.
 * Holds keep what they hold.  A value kept for no purpose is due as soon
 * as ended_at is set; a row in progress (ended_at NULL) has nothing due.
 * A due value gets its column's method (erase by default); once every
 * tagged value of the row is due the row is "fully due": hashed values go
 * too, and the row is deleted or kept fully anonymized (timestamps
 * generalized to the hour).
 *
 * This file decides; trigger.c and sweep.c act on its decisions.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/expiry.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "expiry.h"

static MemoryContext ExpiryCacheContext = NULL;
static HTAB *table_cache = NULL;
static RetentionTable *last_table = NULL;

/*
 * The policy: each purpose's window and legal ceiling, as written.  A
 * window is never trusted to fit its ceiling (a row of window_setting may
 * have been written directly, or restored from a dump): every cutoff is
 * capped by the ceiling's, at the moment it is computed for.
 */
static bool tz_valid = false;
static pg_tz *retention_tz = NULL;

/* the reads of holds and consents, prepared once per backend */
static SPIPlanPtr holds_plan = NULL;
static SPIPlanPtr consent_plan = NULL;
static SPIPlanPtr location_plan = NULL;

static bool owner_valid = false;
static Oid	extension_owner = InvalidOid;

/* bumped by every flush: what callers derived from the caches is stale */
uint64		retention_cache_generation = 0;

static void
expiry_flush(Oid relid)
{
	bool		all = !OidIsValid(relid);

	retention_cache_generation++;
	if (!all && retention_policy_catalog_rel(relid))
		all = true;

	if (all)
	{
		retention_policy_invalidate();
		tz_valid = false;
		owner_valid = false;
	}
	last_table = NULL;
	if (table_cache == NULL)
		return;
	if (all)
	{
		HASH_SEQ_STATUS status;
		RetentionTable *t;

		hash_seq_init(&status, table_cache);
		while ((t = hash_seq_search(&status)) != NULL)
			t->valid = false;
	}
	else
	{
		RetentionTable *t = hash_search(table_cache, &relid, HASH_FIND, NULL);

		if (t != NULL)
			t->valid = false;
	}
}

static void
expiry_init(void)
{
	HASHCTL		ctl;

	if (table_cache != NULL)
		return;
	if (ExpiryCacheContext == NULL)
		ExpiryCacheContext = AllocSetContextCreate(CacheMemoryContext,
												   "retention expiry cache",
												   ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(RetentionTable);
	ctl.hcxt = ExpiryCacheContext;
	table_cache = hash_create("retention tables", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	retention_register_flush(expiry_flush);
}

/*
 * The extension's owner: the rules' SPI queries run as it, since they read
 * catalog tables (holds, consents) that the writing role may not read.
 */
Oid
retention_extension_owner(void)
{
	if (!owner_valid)
	{
		bool		isnull;
		int			ret;
		int			nestlevel = retention_pin_search_path();

		SPI_connect();
		ret = SPI_execute("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'retention'",
						  true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("extension \"retention\" is not installed in this database")));
		extension_owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		retention_unpin_search_path(nestlevel);
		owner_valid = true;
	}
	return extension_owner;
}

/*
 * Calendar arithmetic on instants, in UTC: a month or a day is the
 * calendar's, never 30 days nor the session's local day.  Every deadline,
 * cutoff and bound of the rules is computed with these two, so that no
 * TimeZone setting of a session, role, database or client moves them.
 * retention._window_within() (SQL) compares windows with ceilings in the
 * same arithmetic.
 */
TimestampTz
retention_instant_minus(TimestampTz t, const Interval *span)
{
	if (TIMESTAMP_NOT_FINITE(t))
		return t;
	/* a timestamptz is a UTC timestamp: timestamp arithmetic is UTC's */
	return DatumGetTimestamp(DirectFunctionCall2(timestamp_mi_interval,
												 TimestampGetDatum(t),
												 IntervalPGetDatum(span)));
}

TimestampTz
retention_instant_plus(TimestampTz t, const Interval *span)
{
	if (TIMESTAMP_NOT_FINITE(t))
		return t;
	return DatumGetTimestamp(DirectFunctionCall2(timestamp_pl_interval,
												 TimestampGetDatum(t),
												 IntervalPGetDatum(span)));
}

/*
 * t - span (t + span if plus), or if_out if that could fall outside the
 * range of timestamps.  The cutoffs use -infinity: a window too long to
 * compute keeps what its ceiling allows.  The range is checked beforehand,
 * with a bound on the span (a month at most 31 days), rather than by
 * catching timestamp arithmetic's error, which would need a subtransaction.
 */
TimestampTz
retention_instant_shift_or(TimestampTz t, const Interval *span, bool plus, TimestampTz if_out)
{
	double		bound;

	if (TIMESTAMP_NOT_FINITE(t))
		return t;
	bound = fabs((double) span->month) * 31.0 * USECS_PER_DAY +
		fabs((double) span->day) * (double) USECS_PER_DAY +
		fabs((double) span->time) + (double) USECS_PER_DAY;
	if ((double) t - bound <= (double) MIN_TIMESTAMP ||
		(double) t + bound >= (double) END_TIMESTAMP)
		return if_out;
	return plus ? retention_instant_plus(t, span) : retention_instant_minus(t, span);
}

/*
 * The zone in which timestamp-without-time-zone columns are read: one zone
 * for the whole server, whatever a session, role, database or client sets.
 * retention.timezone when set (PGC_SIGHUP: only postgresql.conf, ALTER
 * SYSTEM or the command line set it); else log_timezone, which is
 * PGC_SIGHUP too and which initdb sets to the same zone as TimeZone.  The
 * TimeZone setting itself cannot decide: ALTER DATABASE/ROLE ... SET,
 * PGOPTIONS and PGTZ change even its reset value.
 */
pg_tz *
retention_zone(void)
{
	if (retention_timezone == NULL || retention_timezone[0] == '\0')
		return log_timezone;
	if (!tz_valid)
	{
		retention_tz = pg_tzset(retention_timezone);
		if (retention_tz == NULL)
			retention_tz = log_timezone;	/* check_timezone refused it */
		tz_valid = true;
	}
	return retention_tz;
}

/* its name, for SQL that reads a timestamp column (AT TIME ZONE) */
const char *
retention_zone_name(void)
{
	return pg_get_timezone_name(retention_zone());
}

TimestampTz
retention_timestamp_to_tz(Timestamp ts)
{
	struct pg_tm tt;
	fsec_t		fsec;
	int			tz;
	TimestampTz result;

	if (TIMESTAMP_NOT_FINITE(ts))
		return ts;
	if (timestamp2tm(ts, NULL, &tt, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	tz = DetermineTimeZoneOffset(&tt, retention_zone());
	if (tm2timestamp(&tt, fsec, &tz, &result) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}

/* -------------------------------------------------------------------------
 * The relation cache
 * -------------------------------------------------------------------------
 */

static AttrNumber
attnum_of(TupleDesc desc, const char *name, Oid *type)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
		{
			if (type)
				*type = att->atttypid;
			return att->attnum;
		}
	}
	return InvalidAttrNumber;
}

/* protection of relid (itself or through an ancestor): fills t */
static void
load_protection(RetentionTable *t, Relation rel, MemoryContext cxt)
{
	List	   *ancestors = NIL;
	ListCell   *lc;
	Datum	   *oids;
	int			n = 0;
	int			ret;
	Oid			argtypes[1] = {OIDARRAYOID};
	Datum		args[1];
	TupleDesc	desc = RelationGetDescr(rel);
	int			nestlevel;

	if (rel->rd_rel->relispartition)
		ancestors = get_partition_ancestors(t->relid);
	oids = palloc(sizeof(Datum) * (list_length(ancestors) + 1));
	oids[n++] = ObjectIdGetDatum(t->relid);
	foreach(lc, ancestors)
		oids[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	args[0] = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));

	nestlevel = retention_pin_search_path();
	SPI_connect();
	/* originated and table_kind are 1.1's: read as JSON, a 1.0 catalog works */
	ret = SPI_execute_with_args("SELECT relid::oid, ended_at, subscriber, on_expiry, billing_anchor, "
								"pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) 'originated', "
								"pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) 'table_kind' "
								"FROM retention.protected_table p WHERE relid::oid = ANY ($1)",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	sdesc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *s;
		int			i;

		t->protected_relid = DatumGetObjectId(SPI_getbinval(tup, sdesc, 1, &isnull));
		t->ended_at = attnum_of(desc, SPI_getvalue(tup, sdesc, 2), &t->ended_at_type);
		if ((s = SPI_getvalue(tup, sdesc, 3)) != NULL)
			t->subscriber = attnum_of(desc, s, NULL);
		t->keep_anonymized = strcmp(SPI_getvalue(tup, sdesc, 4), "anonymize") == 0;
		if ((s = SPI_getvalue(tup, sdesc, 5)) != NULL)
			t->anchor = attnum_of(desc, s, &t->anchor_type);
		if ((s = SPI_getvalue(tup, sdesc, 6)) != NULL)
		{
			Oid			type;

			t->originated = attnum_of(desc, s, &type);
			if (t->originated != InvalidAttrNumber && type != BOOLOID)
				t->originated = InvalidAttrNumber;
		}
		t->contract = ((s = SPI_getvalue(tup, sdesc, 7)) != NULL &&
					   strcmp(s, "subscriber") == 0);

		if (t->ended_at == InvalidAttrNumber ||
			(t->ended_at_type != TIMESTAMPTZOID && t->ended_at_type != TIMESTAMPOID))
		{
			ereport(WARNING,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("protected table \"%s\" has no timestamp column \"%s\"",
							RelationGetRelationName(rel), SPI_getvalue(tup, sdesc, 2)),
					 errdetail("Nothing of it expires until it is protected again."),
					 errhint("Run retention.unprotect() and retention.protect() with the right column.")));
			t->ended_at = InvalidAttrNumber;
		}

		/* methods other than erase */
		ret = SPI_execute_with_args("SELECT attname, method FROM retention.column_method "
									"WHERE relid::oid = $1",
									1, (Oid[]) {OIDOID},
									(Datum[]) {ObjectIdGetDatum(t->protected_relid)},
									NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		for (i = 0; i < (int) SPI_processed; i++)
		{
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			char	   *method = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
			int			c;

			for (c = 0; c < t->ncolumns; c++)
				if (strcmp(NameStr(t->columns[c].attname), name) == 0)
					t->columns[c].method = (RetentionMethod) method_lookup(method);
		}
	}
	SPI_finish();
	retention_unpin_search_path(nestlevel);
}

/*
 * A partition's tagged columns, in the order of the protected table's: SQL
 * built for the protected table and for each partition passes them alike.
 */
static void
order_like_root(RetentionTable *t)
{
	Relation	root = relation_open(t->protected_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(root);
	RetentionColumn *ordered = palloc(sizeof(RetentionColumn) * Max(t->ncolumns, 1));
	int			n = 0;
	int			i,
				c;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		for (c = 0; c < t->ncolumns; c++)
			if (strcmp(NameStr(t->columns[c].attname), NameStr(att->attname)) == 0)
				ordered[n++] = t->columns[c];
	}
	/* a partition has exactly its root's columns */
	if (n == t->ncolumns)
		memcpy(t->columns, ordered, sizeof(RetentionColumn) * n);
	pfree(ordered);
	relation_close(root, NoLock);
}

static void
build_table(RetentionTable *t)
{
	Relation	rel = table_open(t->relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	t->owner = rel->rd_rel->relowner;
	t->columns = MemoryContextAllocZero(ExpiryCacheContext,
										sizeof(RetentionColumn) * Max(desc->natts, 1));
	t->timestamps = MemoryContextAllocZero(ExpiryCacheContext,
										   sizeof(AttrNumber) * Max(desc->natts, 1));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		int			kind;

		if (att->attisdropped)
			continue;
		if (att->atttypid == TIMESTAMPTZOID || att->atttypid == TIMESTAMPOID)
			t->timestamps[t->ntimestamps++] = att->attnum;
		kind = retention_type_kind(att->atttypid);
		if (kind == RT_NONE)
			continue;
		if (t->ncolumns >= RETENTION_MAX_COLUMNS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("table \"%s\" has more than %d purpose-tagged columns",
							RelationGetRelationName(rel), RETENTION_MAX_COLUMNS)));
		t->columns[t->ncolumns].attnum = att->attnum;
		t->columns[t->ncolumns].attname = att->attname;
		t->columns[t->ncolumns].kind = (RetentionTypeKind) kind;
		t->columns[t->ncolumns].tagged = purpose_set_from_typmod(att->atttypmod);
		t->columns[t->ncolumns].method = RM_ERASE;
		t->columns[t->ncolumns].notnull = att->attnotnull;
		t->ncolumns++;
	}
	load_protection(t, rel, ExpiryCacheContext);
	/* what the regime in force keeps each column for */
	for (i = 0; i < t->ncolumns; i++)
	{
		RetentionColumn *c = &t->columns[i];
		int			p;

		c->purposes = retention_column_rules(c->kind, c->tagged, t->contract);
		for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
		{
			if ((c->purposes & PURPOSE_BIT(p)) == 0)
				continue;
			if (retention_rule(p)->must_keep)
				t->has_must_keep = true;
			if (retention_rule(p)->condition == RULE_CONSENT)
				t->has_marketing = true;
			else if (retention_rule(p)->condition == RULE_LOCATION_CONSENT)
				t->has_location = true;
		}
	}
	if (OidIsValid(t->protected_relid) && t->protected_relid != t->relid)
		order_like_root(t);
	t->subscriber_index = -1;
	for (i = 0; i < t->ncolumns; i++)
		if (t->columns[i].attnum == t->subscriber)
			t->subscriber_index = i;
	table_close(rel, NoLock);
}

static void
free_table(RetentionTable *t)
{
	if (t->columns)
		pfree(t->columns);
	if (t->timestamps)
		pfree(t->timestamps);
	if (t->update_plan)
		SPI_freeplan(t->update_plan);
	if (t->delete_plan)
		SPI_freeplan(t->delete_plan);
}

/*
 * retention_table: how retention sees relation relid.  The entry stays
 * valid until the next invalidation; callers must not keep it across
 * statements.
 */
RetentionTable *
retention_table(Oid relid)
{
	RetentionTable *t;
	RetentionTable fresh;
	bool		found;

	if (last_table != NULL && last_table->relid == relid && last_table->valid)
		return last_table;
	expiry_init();

	t = hash_search(table_cache, &relid, HASH_FIND, &found);
	if (found && t->valid)
		return last_table = t;

	/* build into a local copy, so that an error leaves no half entry */
	memset(&fresh, 0, sizeof(fresh));
	fresh.relid = relid;
	PG_TRY();
	{
		build_table(&fresh);
	}
	PG_CATCH();
	{
		free_table(&fresh);
		PG_RE_THROW();
	}
	PG_END_TRY();
	fresh.valid = true;

	t = hash_search(table_cache, &relid, HASH_ENTER, &found);
	if (found)
		free_table(t);
	*t = fresh;
	return last_table = t;
}

/* -------------------------------------------------------------------------
 * The rules
 * -------------------------------------------------------------------------
 */

/*
 * The billing anchor bounded: a row's billing window runs from its billing
 * anchor (the invoice's due date), but never from later than ended_at plus
 * the billing ceiling.  An anchor of infinity or of year 9999, written by
 * any role that may INSERT, would otherwise keep billing data forever:
 * bounded, billing data are kept at most two ceilings after the call (a
 * due date up to a year after it, then the year L34-2 allows).
 * expiry_anchor_bounded() says whether the bound applies to a row.
 */
static inline bool
anchor_kept(const RetentionRule *r, const RetentionRow *row, TimestampTz cutoff)
{
	if (row->billing_anchor <= cutoff)
		return false;
	if (!r->has_ceiling)
		return true;
	return retention_instant_shift_or(row->ended_at, &r->ceiling, true, DT_NOEND) > cutoff;
}

bool
expiry_anchor_bounded(const RetentionRow *row)
{
	const RetentionRule *r = retention_rule(RETENTION_BILLING);

	if (!row->has_anchor || !r->in_force || !r->billing_anchor || !r->has_ceiling)
		return false;
	return row->billing_anchor >
		retention_instant_shift_or(row->ended_at, &r->ceiling, true, DT_NOEND);
}

/* does rule p keep (a value of) a complete row, holds aside? */
static inline bool
rule_keeps(int p, const RetentionCutoffs *cut, const RetentionRow *row)
{
	const RetentionRule *r = retention_rule(p);

	switch (r->condition)
	{
		case RULE_CONSENT:
			return row->consent;
		case RULE_LOCATION_CONSENT:
			return row->location_consent;
		case RULE_DECREE:
			if (!retention_basis_covers(p, row->ended_at))
				return false;
			break;
		case RULE_ORIGINATED:
			if (!row->originated)
				return false;
			break;
		case RULE_NONE:
			break;
	}
	if (r->billing_anchor && row->has_anchor)
		return anchor_kept(r, row, cut->cutoff[p]);
	return row->ended_at > cut->cutoff[p];
}

/* is column c of a complete row still kept for one of its rules? */
static inline bool
column_kept(const RetentionColumn *c, const RetentionCutoffs *cut,
			const RetentionRow *row)
{
	PurposeSet	ps = c->purposes;
	int			p;

	if (row->hold == HOLD_ALL)
		return true;
	/* a billing dispute holds what is kept for billing */
	if (row->hold == HOLD_BILLING && (ps & PURPOSE_BIT(RETENTION_BILLING)))
		return true;
	for (p = 0; ps != 0; p++, ps >>= 1)
		if ((ps & 1) && rule_keeps(p, cut, row))
			return true;
	return false;
}

/*
 * expiry_must_keep_rule: the first rule that must keep (a floor binds) and
 * still keeps column c of a complete row at cut, or -1.  Holds and
 * consents aside: neither makes keeping mandatory.  What no sweep,
 * trigger, subject request or writer may erase before its time.
 */
int
expiry_must_keep_rule(const RetentionColumn *c, const RetentionCutoffs *cut,
					  const RetentionRow *row)
{
	int			p;

	for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
		if ((c->purposes & PURPOSE_BIT(p)) && retention_rule(p)->must_keep &&
			rule_keeps(p, cut, row))
			return p;
	return -1;
}

/* when rule p stops keeping a value of a complete row: its anchor + window */
TimestampTz
expiry_kept_until(int p, const RetentionRow *row)
{
	const RetentionRule *r = retention_rule(p);
	TimestampTz anchor = (r->billing_anchor && row->has_anchor) ? row->billing_anchor : row->ended_at;
	const Interval *span = r->has_floor ? &r->floor : &r->window;

	return retention_instant_shift_or(anchor, span, true, DT_NOEND);
}

/*
 * expiry_window_open: is purpose p's window still open for a complete row
 * (holds and consents aside)?  What retention.expose()'s views show.
 */
bool
expiry_window_open(const RetentionCutoffs *cut, const RetentionRow *row, int p)
{
	RetentionRow bare = *row;

	bare.hold = HOLD_NONE;
	bare.consent = false;
	bare.location_consent = false;
	if (!retention_rule(p)->in_force)
		return false;
	return rule_keeps(p, cut, &bare);
}

/*
 * expiry_due_columns: the tagged columns (bit i for t->columns[i]) of a
 * complete row that are due at cut->now; *fully_due when all are.
 */
uint64
expiry_due_columns(const RetentionTable *t, const RetentionCutoffs *cut,
				   const RetentionRow *row, bool *fully_due)
{
	uint64		due = 0;
	int			i;

	for (i = 0; i < t->ncolumns; i++)
		if (!column_kept(&t->columns[i], cut, row))
			due |= UINT64CONST(1) << i;

	/*
	 * While a consent keeps marketing data of the row, its subscriber stays
	 * too: without it a withdrawal could not reach them.
	 */
	if (row->consent && t->subscriber_index >= 0 &&
		(due & (UINT64CONST(1) << t->subscriber_index)))
	{
		for (i = 0; i < t->ncolumns; i++)
			if ((t->columns[i].purposes & PURPOSE_BIT(RETENTION_MARKETING)) &&
				retention_rule(RETENTION_MARKETING)->condition == RULE_CONSENT &&
				(due & (UINT64CONST(1) << i)) == 0)
			{
				due &= ~(UINT64CONST(1) << t->subscriber_index);
				break;
			}
	}
	*fully_due = (t->ncolumns > 0 && due == (UINT64CONST(1) << (t->ncolumns - 1) << 1) - 1);
	return due;
}

/*
 * expiry_due_bound: the latest ended_at at which some tagged column of a
 * complete row of t, without consent or hold, is due at cut.  *exact when
 * such a row has something due if and only if its ended_at is at or before
 * the bound.  Otherwise (a column whose deadline is not ended_at's: one
 * kept for billing under a billing anchor, for no purpose, or for
 * marketing only) the bound is still true of every row with something due
 * that ended by cut->now, which is all a prefilter needs.
 */
TimestampTz
expiry_due_bound(const RetentionTable *t, const RetentionCutoffs *cut, bool *exact)
{
	TimestampTz bound = DT_NOBEGIN;
	int			i,
				p;

	*exact = true;
	for (i = 0; i < t->ncolumns; i++)
	{
		/* due once ended_at is at or before the earliest of its rules' cutoffs */
		TimestampTz b = DT_NOEND;
		bool		conditional = false;

		for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
		{
			const RetentionRule *r;

			if ((t->columns[i].purposes & PURPOSE_BIT(p)) == 0)
				continue;
			r = retention_rule(p);
			if (r->condition == RULE_CONSENT || r->condition == RULE_LOCATION_CONSENT)
				continue;
			if (r->condition != RULE_NONE)
			{
				/* a decree or the direction may keep nothing: due when it ends */
				conditional = true;
				continue;
			}
			if (r->billing_anchor && t->anchor != InvalidAttrNumber)
			{
				/* due when the anchor's window ends, whatever ended_at is */
				b = Min(b, cut->now);
				*exact = false;
			}
			else
				b = Min(b, cut->cutoff[p]);
		}
		if (b == DT_NOEND)
		{
			/* kept under consent or a condition only: due when the call ends */
			b = cut->now;
			*exact = false;
		}
		else if (conditional)
			*exact = false;
		bound = Max(bound, b);
	}
	return bound;
}

static TimestampTz
timestamp_value(Oid type, Datum d)
{
	if (type == TIMESTAMPOID)
		return retention_timestamp_to_tz(DatumGetTimestamp(d));
	return DatumGetTimestampTz(d);
}

/*
 * expiry_read_row: the row's anchors from its values (indexed by attnum - 1);
 * false if the row is in progress (ended_at NULL) or the table unprotected.
 * Consent and holds are left unknown (false, none): expiry_lookup_row()
 * fills them, when there is something due to look them up for.
 */
bool
expiry_read_row(const RetentionTable *t, const Datum *values, const bool *isnull,
				RetentionRow *row)
{
	memset(row, 0, sizeof(*row));
	if (t->ended_at == InvalidAttrNumber || isnull[t->ended_at - 1])
		return false;
	row->ended_at = timestamp_value(t->ended_at_type, values[t->ended_at - 1]);
	row->originated = (t->originated == InvalidAttrNumber ||
					   (!isnull[t->originated - 1] && DatumGetBool(values[t->originated - 1])));
	if (t->anchor != InvalidAttrNumber && !isnull[t->anchor - 1])
	{
		row->billing_anchor = timestamp_value(t->anchor_type, values[t->anchor - 1]);
		row->has_anchor = true;
	}
	return true;
}

/*
 * The rules' lookups read catalog tables (holds, consents) that the writing
 * role may not read: they run as the extension's owner, with search_path
 * pinned, through SPI.  owner_spi_begin() and owner_spi_end() bracket them.
 */
typedef struct OwnerSPI
{
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;
} OwnerSPI;

static void
owner_spi_begin(OwnerSPI *o)
{
	GetUserIdAndSecContext(&o->save_userid, &o->save_sec_context);
	SetUserIdAndSecContext(retention_extension_owner(),
						   o->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);
	o->nestlevel = retention_pin_search_path();
	SPI_connect();
}

static void
owner_spi_end(OwnerSPI *o)
{
	SPI_finish();
	retention_unpin_search_path(o->nestlevel);
	SetUserIdAndSecContext(o->save_userid, o->save_sec_context);
}

/*
 * Run the query sql, read-only, with the current command's snapshot; its
 * plan is prepared on first use and kept in *plan for the backend's life.
 */
static void
run_kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
			  Datum *values, long count)
{
	int			ret;

	if (*plan == NULL)
	{
		*plan = SPI_prepare(sql, nargs, types);
		if (*plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(*plan);
	}
	ret = SPI_execute_plan(*plan, values, NULL, true, count);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
}

/* -------------------------------------------------------------------------
 * Holds, as the current command sees them
 * -------------------------------------------------------------------------
 */

/* one active hold on a subscriber's calls ended in [from, to] */
typedef struct HoldEntry
{
	struct HoldEntry *next;		/* in the same bucket */
	uint32		hash;
	int			len;
	char	   *subscriber;
	TimestampTz from;
	TimestampTz to;
	RetentionHold hold;
} HoldEntry;

/*
 * The active holds of one protected table, read once per command: the rows
 * of one command all see the same holds (its snapshot), so that a COPY does
 * not query retention.hold row by row.  Valid for one backend transaction,
 * command, table and cache generation.
 */
static MemoryContext HoldSetContext = NULL;
static HoldEntry **hold_buckets = NULL;
static int	hold_nbuckets = 0;
static int	hold_count = 0;
static LocalTransactionId hold_lxid = InvalidLocalTransactionId;
static CommandId hold_cid = InvalidCommandId;
static Oid	hold_relid = InvalidOid;
static uint64 hold_generation = 0;

static uint32
hold_hash(const char *str, int len)
{
	return DatumGetUInt32(hash_any((const unsigned char *) str, len));
}

/* read the active holds of t's protected table, as the extension's owner */
static void
load_holds(const RetentionTable *t)
{
	OwnerSPI	o;
	uint64		i;
	MemoryContext oldcxt;

	if (HoldSetContext == NULL)
		HoldSetContext = AllocSetContextCreate(TopMemoryContext, "retention holds",
											   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(HoldSetContext);
	hold_buckets = NULL;
	hold_nbuckets = 0;
	hold_count = 0;
	hold_lxid = InvalidLocalTransactionId;

	/* a kept plan: a command that rewrites rows reads the holds again */
	owner_spi_begin(&o);
	run_kept_plan(&holds_plan,
				  "SELECT subscriber, from_ts, to_ts, reason = 'billing_dispute' "
				  "FROM retention.hold WHERE relid::oid = $1 "
				  "AND released_at IS NULL AND (until IS NULL OR until > $2)",
				  2, (Oid[]) {OIDOID, TIMESTAMPTZOID},
				  (Datum[]) {ObjectIdGetDatum(t->protected_relid),
					  TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())},
				  0);

	oldcxt = MemoryContextSwitchTo(HoldSetContext);
	hold_nbuckets = 1;
	while (hold_nbuckets < (int) Min(SPI_processed, (uint64) 1 << 20))
		hold_nbuckets <<= 1;
	hold_buckets = palloc0(sizeof(HoldEntry *) * hold_nbuckets);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		HoldEntry  *h = palloc(sizeof(HoldEntry));
		text	   *sub;
		bool		isnull;

		sub = DatumGetTextPP(SPI_getbinval(tup, desc, 1, &isnull));
		h->len = VARSIZE_ANY_EXHDR(sub);
		h->subscriber = pnstrdup(VARDATA_ANY(sub), h->len);
		h->hash = hold_hash(h->subscriber, h->len);
		h->from = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
		h->to = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
		h->hold = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)) ? HOLD_BILLING : HOLD_ALL;
		h->next = hold_buckets[h->hash & (hold_nbuckets - 1)];
		hold_buckets[h->hash & (hold_nbuckets - 1)] = h;
		hold_count++;
	}
	MemoryContextSwitchTo(oldcxt);
	owner_spi_end(&o);
}

/* what the active holds keep of subscriber's row ended at ended_at */
static RetentionHold
command_hold(const RetentionTable *t, Datum subscriber, TimestampTz ended_at)
{
	CommandId	cid = GetCurrentCommandId(false);
	uint64		generation = retention_cache_generation;
	text	   *sub;
	const char *str;
	int			len;
	uint32		hash;
	HoldEntry  *h;
	RetentionHold result = HOLD_NONE;

	if (RETENTION_LXID != hold_lxid || cid != hold_cid ||
		t->protected_relid != hold_relid || generation != hold_generation)
	{
		load_holds(t);
		hold_lxid = RETENTION_LXID;
		hold_cid = cid;
		hold_relid = t->protected_relid;
		hold_generation = generation;
	}
	if (hold_count == 0)
		return HOLD_NONE;

	sub = DatumGetTextPP(subscriber);
	str = VARDATA_ANY(sub);
	len = VARSIZE_ANY_EXHDR(sub);
	hash = hold_hash(str, len);
	for (h = hold_buckets[hash & (hold_nbuckets - 1)]; h != NULL; h = h->next)
	{
		if (h->hash != hash || h->len != len || memcmp(h->subscriber, str, len) != 0)
			continue;
		if (ended_at < h->from || ended_at > h->to)
			continue;
		result = Max(result, h->hold);
	}
	return result;
}

/*
 * expiry_location_consent: is a location consent of subscriber in effect
 * at moment?  retention._location_consent_active() is the same condition
 * in SQL.  Reads retention.location_consent as the extension's owner.
 */
bool
expiry_location_consent(Datum subscriber, TimestampTz moment)
{
	OwnerSPI	o;
	bool		result;

	owner_spi_begin(&o);
	run_kept_plan(&location_plan,
				  "SELECT 1 FROM retention.location_consent l "
				  "WHERE l.subscriber = $1 AND l.withdrawn_at IS NULL AND l.suspended_at IS NULL "
				  "AND CASE l.kind WHEN 'location' THEN l.valid_until > $2 "
				  "ELSE l.closed_at IS NULL END",
				  2, (Oid[]) {TEXTOID, TIMESTAMPTZOID},
				  (Datum[]) {subscriber, TimestampTzGetDatum(moment)},
				  1);
	result = (SPI_processed == 1);
	owner_spi_end(&o);
	return result;
}

/*
 * expiry_lookup_row: if need_holds, the holds on the row and, if
 * need_consent, the subscriber's consents (marketing, location) the table
 * can use.  Reads retention.hold and the consents as the extension's
 * owner: the writing role may not.
 */
void
expiry_lookup_row(const RetentionTable *t, const Datum *values, const bool *isnull,
				  RetentionRow *row, bool need_holds, bool need_consent)
{
	OwnerSPI	o;
	Datum		subscriber;
	TimestampTz moment = GetCurrentTransactionStartTimestamp();

	if (t->subscriber == InvalidAttrNumber || isnull[t->subscriber - 1])
		return;
	subscriber = values[t->subscriber - 1];
	if (need_holds)
		row->hold = command_hold(t, subscriber, row->ended_at);
	if (!need_consent)
		return;
	if (t->has_location)
		row->location_consent = expiry_location_consent(subscriber, moment);
	if (!t->has_marketing)
		return;

	owner_spi_begin(&o);
	run_kept_plan(&consent_plan,
				  "SELECT 1 FROM retention.consent "
				  "WHERE subscriber = $1 AND withdrawn_at IS NULL "
				  "AND least(valid_until, contract_end) > $2",
				  2, (Oid[]) {TEXTOID, TIMESTAMPTZOID},
				  (Datum[]) {subscriber, TimestampTzGetDatum(moment)},
				  1);
	row->consent = (SPI_processed == 1);
	owner_spi_end(&o);
}

/*
 * Does an active hold (as of moment) keep rows of the protected table
 * root?  Where none does, rows need no hold lookup.  With fresh, read with
 * a new snapshot: a sweep batch asks after waiting for a hold being
 * placed, and must see it; otherwise with the current command's, as its
 * row-by-row lookups read.
 */
bool
retention_table_has_holds(Oid root, TimestampTz moment, bool fresh)
{
	bool		isnull;
	bool		result;
	int			ret;
	OwnerSPI	o;

	/* as the extension's owner: a sweep batch runs as the table's */
	owner_spi_begin(&o);
	ret = SPI_execute_with_args("SELECT EXISTS (SELECT 1 FROM retention.hold h WHERE h.relid = $1 "
								"AND h.released_at IS NULL AND (h.until IS NULL OR h.until > $2))",
								2, (Oid[]) {OIDOID, TIMESTAMPTZOID},
								(Datum[]) {ObjectIdGetDatum(root), TimestampTzGetDatum(moment)},
								NULL, !fresh, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	owner_spi_end(&o);
	return result;
}

/*
 * The method column c gets when due.  Hashes go too once the row is fully
 * due; and where may_hash is false (a value a writer is supplying, rather
 * than one that rested in the table until its deadline) a hashed column is
 * erased instead: otherwise any role that may write the table and read it
 * back would learn the pseudonym of a value of its choosing, which method
 * hash through SQL is reserved against.
 */
static inline RetentionMethod
effective_method(const RetentionColumn *c, bool fully_due, bool may_hash)
{
	if (c->method == RM_HASH && (fully_due || !may_hash))
		return RM_ERASE;
	return c->method;
}

/*
 * does value (not NULL) still need method applied?  The empty value holds
 * nothing: it is what erasing leaves in a NOT NULL column.
 */
static bool
value_needs(const RetentionColumn *c, RetentionMethod m, Datum value)
{
	text	   *v = DatumGetTextPP(value);
	RetentionValueForm form = retention_value_form(c->kind, VARDATA_ANY(v),
												   VARSIZE_ANY_EXHDR(v));

	if (form == RV_EMPTY)
		return false;
	switch (m)
	{
		case RM_ERASE:
			return true;
		case RM_GENERALIZE:
			return form != RV_GENERALIZED;
		case RM_HASH:
			return form == RV_CLEAR;
	}
	return true;
}

/*
 * expiry_needs_work: would expiry_apply() change anything?  In delete mode a
 * fully due row always needs work (deletion) and is not asked about here.
 * With timestamps false, only the tagged values are looked at; may_hash as
 * for effective_method().
 */
bool
expiry_needs_work(const RetentionTable *t, uint64 due, bool fully_due, bool may_hash,
				  const Datum *values, const bool *isnull, bool timestamps)
{
	int			i;

	for (i = 0; i < t->ncolumns; i++)
	{
		const RetentionColumn *c = &t->columns[i];

		if ((due & (UINT64CONST(1) << i)) == 0 || isnull[c->attnum - 1])
			continue;
		if (value_needs(c, effective_method(c, fully_due, may_hash), values[c->attnum - 1]))
			return true;
	}
	if (fully_due && t->keep_anonymized && timestamps)
	{
		for (i = 0; i < t->ntimestamps; i++)
		{
			AttrNumber	a = t->timestamps[i];

			if (!isnull[a - 1] &&
				retention_generalize_timestamp(DatumGetTimestampTz(values[a - 1])) !=
				DatumGetTimestampTz(values[a - 1]))
				return true;
		}
	}
	return false;
}

/*
 * expiry_apply: apply the due columns' methods to values/isnull in place
 * (marking replace[attnum - 1]); when the row is fully due and kept
 * anonymized, generalize its timestamps too.  Returns whether anything
 * changed.
 */
bool
expiry_apply(const RetentionTable *t, uint64 due, bool fully_due, bool may_hash,
			 Datum *values, bool *isnull, bool *replace)
{
	bool		changed = false;
	int			i;

	for (i = 0; i < t->ncolumns; i++)
	{
		const RetentionColumn *c = &t->columns[i];
		AttrNumber	a = c->attnum;
		RetentionMethod m = effective_method(c, fully_due, may_hash);
		text	   *result;

		if ((due & (UINT64CONST(1) << i)) == 0 || isnull[a - 1])
			continue;
		if (!value_needs(c, m, values[a - 1]))
			continue;
		result = retention_anonymize_value(c->kind, DatumGetTextPP(values[a - 1]), m);
		/* a NOT NULL column is erased to the empty value (protect() checks) */
		if (result == NULL && c->notnull)
			result = cstring_to_text("");
		values[a - 1] = PointerGetDatum(result);
		isnull[a - 1] = (result == NULL);
		replace[a - 1] = true;
		changed = true;
	}
	if (fully_due && t->keep_anonymized)
	{
		for (i = 0; i < t->ntimestamps; i++)
		{
			AttrNumber	a = t->timestamps[i];
			TimestampTz ts,
						g;

			if (isnull[a - 1])
				continue;
			ts = DatumGetTimestampTz(values[a - 1]);
			g = retention_generalize_timestamp(ts);
			if (g != ts)
			{
				values[a - 1] = TimestampTzGetDatum(g);
				replace[a - 1] = true;
				changed = true;
			}
		}
	}
	return changed;
}
