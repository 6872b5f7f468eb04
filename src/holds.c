/*-------------------------------------------------------------------------
 *
 * holds.c
 *	  What holds and consents keep of a row: the active holds on a
 *	  protected table, as the current command sees them, and a
 *	  subscriber's marketing and location consents.
 *
 * They live in catalog tables the writing role may not read: the lookups
 * run as the extension's owner, with search_path pinned.  Not here: what a
 * hold or a consent keeps (expiry.c).
 *
 * Copyright (c) 2026, retention developers
 *
 * src/holds.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "expiry.h"

/* the reads of holds and consents, prepared once per backend */
static SPIPlanPtr holds_plan = NULL;
static SPIPlanPtr consent_plan = NULL;
static SPIPlanPtr location_plan = NULL;

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

	ret = SPI_execute_plan(retention_kept_plan(plan, sql, nargs, types), values, NULL, true, count);
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
				  "SELECT h.subscriber, h.from_ts, h.to_ts, h.reason = 'billing_dispute' "
				  "FROM retention.hold h WHERE h.relid::oid = $1 "
				  "AND " HOLD_ACTIVE_SQL("h", "$2"),
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
				  "SELECT 1 WHERE retention._location_consent_active($1, $2)",
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
				  "SELECT 1 FROM retention.consent c "
				  "WHERE c.subscriber = $1 AND " CONSENT_ACTIVE_SQL("c", "$2"),
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
	static SPIPlanPtr table_holds_plan = NULL;

	/* as the extension's owner: a sweep batch runs as the table's */
	owner_spi_begin(&o);
	/* planned once: each batch of a sweep asks */
	ret = SPI_execute_plan(retention_kept_plan(&table_holds_plan,
											   "SELECT EXISTS (SELECT 1 FROM retention.hold h WHERE h.relid = $1 "
											   "AND " HOLD_ACTIVE_SQL("h", "$2") ")",
											   2, (Oid[]) {OIDOID, TIMESTAMPTZOID}),
						   (Datum[]) {ObjectIdGetDatum(root), TimestampTzGetDatum(moment)},
						   NULL, !fresh, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	owner_spi_end(&o);
	return result;
}
