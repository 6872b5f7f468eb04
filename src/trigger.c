/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  The row-level expiry triggers: what is already due when a row is
 *	  written is never stored in clear.
 *
 * protect() gives each protected table two triggers, and chooses their
 * events so that ingest stays at full speed:
 *
 *	retention_expire_before  BEFORE UPDATE (and INSERT, see below) FOR EACH
 *		ROW: applies the rules to the new row in place.  A call completed
 *		late, or a value rewritten past its deadline, is anonymized before
 *		it is stored.
 *	retention_expire_after   AFTER INSERT OR UPDATE FOR EACH ROW WHEN
 *		(retention._due_at_write(...)): the WHEN prefilter is a cheap test
 *		on ended_at; only rows that pass it (late or back-filled CDRs)
 *		queue an event, and the trigger then anonymizes the row it wrote
 *		(an UPDATE that the BEFORE trigger transforms) or deletes it.  An
 *		AFTER trigger keeps COPY's multi-row inserts, which any BEFORE ROW
 *		INSERT trigger turns off.
 *
 * A table with a column that falls due as soon as the call ends (kept for
 * no purpose, or for marketing only) has every completed row changed as it
 * is written; for it, the BEFORE trigger also fires on INSERT, changing the
 * row before it is stored at all, and the AFTER trigger is for UPDATE only.
 * In a table that keeps rows anonymized (on_expiry 'anonymize') the AFTER
 * trigger has nothing to do after an UPDATE, which never leaves a row to
 * delete: there it fires on INSERT only, or not at all.
 *
 * A writer is never made to fail by well-typed data: the AFTER trigger's
 * work runs in a subtransaction, and a failure there is logged (WARNING and
 * retention.write_log) for the sweep to retry.  Rows deleted or anonymized
 * here are counted in retention.write_log.  The rules are expiry.c's.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/trigger.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "replication/logicalworker.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "expiry.h"
#include "sweep.h"

PG_FUNCTION_INFO_V1(retention_expire_before);
PG_FUNCTION_INFO_V1(retention_expire_after);
PG_FUNCTION_INFO_V1(retention_due_at_write);
PG_FUNCTION_INFO_V1(retention_tagged_columns);

/* a writer's: as of each statement, counted */
static const RetentionDecision writer_decision = {0, false, InvalidOid, InvalidOid, NULL};
static const RetentionDecision *current_decision = &writer_decision;
static bool decision_callback_registered = false;

/* an aborted transaction leaves no context pushed (the frames are gone) */
static void
decision_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		current_decision = &writer_decision;
}

const RetentionDecision *
retention_decision(void)
{
	return current_decision;
}

void
retention_decision_push(RetentionDecision *d)
{
	if (!decision_callback_registered)
	{
		RegisterXactCallback(decision_xact_callback, NULL);
		decision_callback_registered = true;
	}
	d->outer = current_decision;
	current_decision = d;
}

/*
 * Pop d, and whatever an error left pushed above it (never read: its
 * frame may be gone), back to the context d was pushed on.
 */
void
retention_decision_pop(RetentionDecision *d)
{
	current_decision = d->outer;
}

static TimestampTz
decision_time(void)
{
	if (current_decision->moment != 0)
		return current_decision->moment;
	return GetCurrentStatementStartTimestamp();
}

/* append a row to retention.write_log, whatever the writer's privileges */
static void
write_log(Oid relid, const char *action, int rows, const char *error)
{
	Relation	rel;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	HeapTuple	tup;
	Oid			logrel = get_relname_relid("write_log", retention_schema_oid(false));

	if (!OidIsValid(logrel))
		return;
	rel = table_open(logrel, RowExclusiveLock);
	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[1] = ObjectIdGetDatum(relid);
	values[2] = CStringGetTextDatum(action);
	values[3] = Int32GetDatum(rows);
	if (error)
		values[4] = CStringGetTextDatum(error);
	else
		nulls[4] = true;
	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	simple_heap_insert(rel, tup);
	heap_freetuple(tup);
	table_close(rel, RowExclusiveLock);
}

/* deform a trigger tuple into fresh arrays */
static void
deform(HeapTuple tuple, TupleDesc desc, Datum **values, bool **isnull)
{
	*values = palloc(sizeof(Datum) * desc->natts);
	*isnull = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(tuple, desc, *values, *isnull);
}

/*
 * What is due in this row now: looks up holds and consent only when
 * something would be due without them (and holds only where a sweep has
 * not seen that there are none).
 */
static uint64
row_due(RetentionTable *t, const Datum *values, const bool *isnull,
		bool *fully_due, bool *complete, bool without_anchor)
{
	RetentionCutoffs cut;
	RetentionRow row;
	uint64		due;

	*fully_due = false;
	*complete = expiry_read_row(t, values, isnull, &row);
	if (!*complete)
		return 0;
	if (without_anchor)
		row.has_anchor = false;
	retention_cutoffs(decision_time(), &cut);
	due = expiry_due_columns(t, &cut, &row, fully_due);
	if (due == 0)
		return 0;
	expiry_lookup_row(t, values, isnull, &row, t->relid != current_decision->unheld,
					  expiry_has_consents(t));
	return expiry_due_columns(t, &cut, &row, fully_due);
}

/* does the new version of a row hold the same values as the old one? */
static bool
tuple_unchanged(HeapTuple oldtuple, TupleDesc desc,
				const Datum *newvalues, const bool *newisnull)
{
	Datum	   *oldvalues;
	bool	   *oldisnull;
	int			i;

	deform(oldtuple, desc, &oldvalues, &oldisnull);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (oldisnull[i] != newisnull[i])
			return false;
		if (!oldisnull[i] &&
			!datumIsEqual(oldvalues[i], newvalues[i], att->attbyval, att->attlen))
			return false;
	}
	return true;
}

static void
check_trigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired by a trigger", name)));
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired for each row on INSERT or UPDATE", name)));
}

/* the instant a timestamp column's value stands for */
static TimestampTz
instant_of(Oid type, Datum d)
{
	if (type == TIMESTAMPOID)
		return retention_timestamp_to_tz(DatumGetTimestamp(d));
	return DatumGetTimestampTz(d);
}

/*
 * How far ahead of the server's clock ended_at may be: clock skew, and a
 * timestamp column written in a zone up to 26 hours from retention's.  A
 * later end (infinity, year 9999) would keep the row from every deadline.
 */
#define FUTURE_TOLERANCE	((TimestampTz) 2 * USECS_PER_DAY)

static bool
ended_in_future(TimestampTz ended_at)
{
	return ended_at > decision_time() + FUTURE_TOLERANCE;
}

static void
refuse_future_end(Relation rel)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
			 errmsg("ended_at of a row of \"%s\" is in the future", RelationGetRelationName(rel)),
			 errdetail("Deadlines run from the end of the communication: an end to come would postpone them all."),
			 errhint("ended_at may be at most 2 days ahead of the server's clock; leave it NULL while the call is in progress.")));
}

/*
 * An UPDATE of a completed row may not postpone its deadlines: they run
 * from ended_at (and, for billing, from the billing anchor), so once a
 * communication has ended its end cannot go back to NULL ("in progress")
 * nor move later, and a billing anchor once set cannot move later (nor to
 * NULL when ended_at is later than it).  Moving either earlier only
 * brings deadlines closer, and is allowed; so is setting an anchor for the
 * first time (the invoice is issued after the call), within the bound of
 * expiry.c, but what was due without it stays due: returns true then, for
 * the caller to apply both.
 */
static bool
check_no_postponing(RetentionTable *t, Relation rel, HeapTuple oldtuple,
					const Datum *values, const bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		oldnull;
	Datum		old;
	TimestampTz old_anchor;
	TimestampTz new_anchor;

	if (t->ended_at == InvalidAttrNumber)
		return false;
	old = heap_getattr(oldtuple, t->ended_at, desc, &oldnull);
	if (oldnull)
	{
		/* completed now: not in the future */
		if (!isnull[t->ended_at - 1] &&
			ended_in_future(instant_of(t->ended_at_type, values[t->ended_at - 1])))
			refuse_future_end(rel);
		return false;
	}
	if (isnull[t->ended_at - 1])
		ereport(ERROR,
				(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
				 errmsg("cannot set ended_at of a completed row of \"%s\" back to NULL",
						RelationGetRelationName(rel)),
				 errdetail("Its deadlines run from the end of the communication: a row in progress has none."),
				 errhint("A completed communication stays completed; an earlier ended_at is accepted.")));
	if (instant_of(t->ended_at_type, values[t->ended_at - 1]) >
		instant_of(t->ended_at_type, old))
		ereport(ERROR,
				(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
				 errmsg("cannot move ended_at of a completed row of \"%s\" later",
						RelationGetRelationName(rel)),
				 errdetail("Its deadlines run from the end of the communication: a later end would postpone them."),
				 errhint("An earlier ended_at is accepted; to keep a row longer, place a hold.")));

	if (t->anchor == InvalidAttrNumber)
		return false;
	old = heap_getattr(oldtuple, t->anchor, desc, &oldnull);
	if (oldnull)
		return !isnull[t->anchor - 1];	/* set for the first time */
	old_anchor = instant_of(t->anchor_type, old);
	new_anchor = isnull[t->anchor - 1] ?
		instant_of(t->ended_at_type, values[t->ended_at - 1]) :
		instant_of(t->anchor_type, values[t->anchor - 1]);
	if (new_anchor > old_anchor)
		ereport(ERROR,
				(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
				 errmsg("cannot move the billing anchor of a completed row of \"%s\" later",
						RelationGetRelationName(rel)),
				 errdetail("Its billing deadline runs from the billing anchor (or from ended_at where the anchor is NULL): a later one would postpone it."),
				 errhint("An earlier billing anchor is accepted; to keep billing data longer, place a billing_dispute hold.")));
	return false;
}

/*
 * Floors (CPCE L34-1 II bis, III): what a rule that must keep still keeps
 * may not be erased early by an UPDATE, by anyone.  A tagged value of a
 * completed row that such a rule keeps, in clear, is "kept": changing or
 * erasing it, or moving the row's anchors so that it falls due, is
 * refused.  Everything else (rows in progress, values no such rule keeps,
 * what is due, anonymized forms) may be changed as before.  (A DELETE is
 * not checked: a row trigger on DELETE makes PostgreSQL lock and fetch
 * every row deleted, doubling what the sweep's own DELETEs cost.)
 */
static bool
value_in_clear(const RetentionColumn *c, Datum value, bool isnull)
{
	text	   *v;

	if (isnull)
		return false;
	v = DatumGetTextPP(value);
	return VARSIZE_ANY_EXHDR(v) > 0 &&
		retention_value_form(c->kind, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v)) == RV_CLEAR;
}

pg_noreturn static void
refuse_early_erasure(Relation rel, const RetentionColumn *c, int p, const RetentionRow *row,
					 const char *what)
{
	const RetentionRule *r = retention_rule(p);
	TimestampTz until = expiry_kept_until(p, row);
	char	   *purpose = pstrdup(retention_purpose_names[p]);
	char	   *u;

	for (u = purpose; *u; u++)
		if (*u == '_')
			*u = ' ';
	ereport(ERROR,
			(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
			 errmsg("cannot %s of \"%s\" that the law requires kept", what,
					RelationGetRelationName(rel)),
			 errdetail("Column \"%s\" holds %s data, which %s requires kept until %s.",
					   NameStr(c->attname), purpose, r->citation ? r->citation : "the law",
					   TIMESTAMP_NOT_FINITE(until) ? "further notice" : timestamptz_to_str(until)),
			 errhint("It goes when its time comes, with the sweep: erasing it earlier is an offence, as keeping it longer is.")));
}

/*
 * An UPDATE of a completed row keeps every kept value as it was, and kept:
 * the new row's anchors may not bring its deadline before the floor.
 */
static void
check_no_early_erasure(RetentionTable *t, Relation rel, HeapTuple oldtuple,
					   const Datum *values, const bool *isnull, bool unchanged)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *oldvalues;
	bool	   *oldisnull;
	RetentionRow oldrow,
				newrow;
	RetentionCutoffs cut;
	bool		new_complete;
	int			i;

	/* as written, nothing changes (retention's own re-write of a row) */
	if (!t->has_must_keep || unchanged)
		return;
	deform(oldtuple, desc, &oldvalues, &oldisnull);
	if (!expiry_read_row(t, oldvalues, oldisnull, &oldrow))
		return;					/* in progress: no floor runs yet */
	retention_cutoffs(decision_time(), &cut);
	new_complete = expiry_read_row(t, values, isnull, &newrow);
	for (i = 0; i < t->ncolumns; i++)
	{
		const RetentionColumn *c = &t->columns[i];
		AttrNumber	a = c->attnum;
		Form_pg_attribute att = TupleDescAttr(desc, a - 1);
		int			p = expiry_must_keep_rule(c, &cut, &oldrow);

		if (p < 0 || !value_in_clear(c, oldvalues[a - 1], oldisnull[a - 1]))
			continue;
		if (isnull[a - 1] ||
			!datumIsEqual(oldvalues[a - 1], values[a - 1], att->attbyval, att->attlen))
			refuse_early_erasure(rel, c, p, &oldrow, "erase or change a value of a completed row");
		if (new_complete && expiry_must_keep_rule(c, &cut, &newrow) < 0)
			refuse_early_erasure(rel, c, p, &oldrow, "bring forward the deadline of a completed row");
	}
}

/*
 * The expiry triggers are ENABLE ALWAYS, so that they fire for logical
 * replication's apply workers, which write in replica mode: a subscriber
 * enforces retention as rows arrive.  A session of its own in replica mode
 * (session_replication_role is for superusers only) is loading rows as
 * they were written, history from before protection: they are stored as
 * written, for the next sweep, and verify() shows what is overdue.
 */
static bool
stored_as_written(void)
{
	return SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA && !IsLogicalWorker();
}

/*
 * A Citus shard whose table this node's catalog does not protect (Citus
 * copies a table's triggers to its shards, and only the node where the
 * table was protected knows it): a row written there would be stored with
 * nothing expired.  Fail closed: the write is refused.
 */
static void
refuse_unprotected_shard(Relation rel, const RetentionTable *t)
{
	char	   *table;

	if (!OidIsValid(t->citus_table) || OidIsValid(t->protected_relid))
		return;
	table = get_rel_name(t->citus_table);
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot write to shard \"%s\" of Citus table \"%s\"",
					RelationGetRelationName(rel), table ? table : "?"),
			 errdetail("Retention's triggers were copied to the shard, but table \"%s\" is not protected on this node: the row would be stored with nothing expired.",
					   table ? table : "?"),
			 errhint("Retention does not enforce Citus tables yet: undistribute_table() makes the table local again, to be protected again.  See docs/citus.md.")));
}

/*
 * retention_expire_before: BEFORE INSERT/UPDATE FOR EACH ROW.  Applies what
 * is due to the new row before it is stored.  A fully due row in a table
 * that deletes expired rows is not inserted at all (and counted); on
 * UPDATE it is stored with nothing personal left, and the AFTER trigger
 * deletes it.
 */
Datum
retention_expire_before(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	newtuple;
	RetentionTable *t;
	Datum	   *values;
	bool	   *isnull;
	bool	   *replace;
	bool		fully_due,
				complete;
	bool		inserting;
	uint64		due;
	HeapTuple	noop;
	bool		may_hash;
	bool		anchor_first = false;
	bool		unchanged = false;

	check_trigger(fcinfo, "retention._expire_before");
	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	inserting = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event);
	newtuple = inserting ? trigdata->tg_trigtuple : trigdata->tg_newtuple;

	if (stored_as_written())
	{
		/* not swept since it was written: the next sweep must look at all */
		t = retention_table(RelationGetRelid(rel));
		refuse_unprotected_shard(rel, t);
		if (OidIsValid(t->protected_relid))
			retention_sweep_note_as_written(RelationGetRelid(rel), t->protected_relid);
		return PointerGetDatum(newtuple);
	}
	t = retention_table(RelationGetRelid(rel));
	refuse_unprotected_shard(rel, t);
	if (!OidIsValid(t->protected_relid) || t->ncolumns == 0)
		return PointerGetDatum(newtuple);

	noop = (!inserting && RelationGetRelid(rel) == current_decision->rewriting) ?
		NULL : newtuple;
	deform(newtuple, desc, &values, &isnull);
	if (!inserting)
	{
		/* retention's own re-writes change nothing of what they are given */
		unchanged = RelationGetRelid(rel) == current_decision->rewriting &&
			tuple_unchanged(trigdata->tg_trigtuple, desc, values, isnull);
		anchor_first = check_no_postponing(t, rel, trigdata->tg_trigtuple, values, isnull);
		check_no_early_erasure(t, rel, trigdata->tg_trigtuple, values, isnull, unchanged);
	}
	else if (t->ended_at != InvalidAttrNumber && !isnull[t->ended_at - 1] &&
			 ended_in_future(instant_of(t->ended_at_type, values[t->ended_at - 1])))
		refuse_future_end(rel);
	due = row_due(t, values, isnull, &fully_due, &complete, false);
	if (anchor_first)
	{
		/* what was due before the anchor was set stays due */
		bool		was_fully_due;
		uint64		all = (UINT64CONST(1) << (t->ncolumns - 1) << 1) - 1;

		due |= row_due(t, values, isnull, &was_fully_due, &complete, true);
		fully_due = (due == all);
	}
	if (due == 0)
		return PointerGetDatum(noop);

	if (inserting && fully_due && !t->keep_anonymized)
	{
		if (!current_decision->quiet)
			write_log(t->protected_relid, "deleted", 1, NULL);
		return PointerGetDatum(NULL);
	}

	/*
	 * Only a value that rested in the table until its deadline is hashed:
	 * that is, in retention's own re-write of a stored row, unchanged, by a
	 * sweep or a subject's request.  A value a writer supplies now (an
	 * INSERT, any UPDATE of theirs, the AFTER trigger's fix-up of a row
	 * just inserted, or a write made from inside a sweep by the owner's own
	 * trigger) is erased where its column would be hashed.
	 */
	may_hash = !inserting && current_decision->moment != 0 && unchanged;

	replace = palloc0(sizeof(bool) * desc->natts);
	if (!expiry_apply(t, due, fully_due, may_hash, values, isnull, replace))
		return PointerGetDatum(noop);
	if (!current_decision->quiet)
		write_log(t->protected_relid, "anonymized", 1, NULL);
	return PointerGetDatum(heap_modify_tuple(newtuple, desc, values, isnull, replace));
}

/* prepare "UPDATE/DELETE ... WHERE ctid = $1" for relation t, once */
SPIPlanPtr
retention_fixup_plan(RetentionTable *t, Relation rel, bool delete)
{
	SPIPlanPtr *slot = delete ? &t->delete_plan : &t->update_plan;
	char	   *relname;
	char	   *sql;
	Oid			argtypes[1] = {TIDOID};

	if (*slot != NULL)
		return *slot;
	relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										 RelationGetRelationName(rel));
	if (delete)
		sql = psprintf("DELETE FROM ONLY %s WHERE ctid = $1", relname);
	else
	{
		const char *ended_at = NameStr(TupleDescAttr(RelationGetDescr(rel), t->ended_at - 1)->attname);

		sql = psprintf("UPDATE ONLY %s SET %s = %s WHERE ctid = $1 RETURNING ctid", relname,
					   quote_identifier(ended_at), quote_identifier(ended_at));
	}
	*slot = SPI_prepare(sql, 1, argtypes);
	if (*slot == NULL)
		elog(ERROR, "SPI_prepare(\"%s\") failed: %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(*slot);
	return *slot;
}

typedef struct Fixup
{
	RetentionTable *t;
	Relation	rel;
	ItemPointer tid;
	bool		delete;
} Fixup;

static void
fixup_step(void *arg)
{
	Fixup	   *f = (Fixup *) arg;
	Datum		tid = PointerGetDatum(f->tid);
	int			ret;

	SPI_connect();
	ret = SPI_execute_plan(retention_fixup_plan(f->t, f->rel, f->delete), &tid, NULL, false, 1);
	if (ret != (f->delete ? SPI_OK_DELETE : SPI_OK_UPDATE_RETURNING))
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));

	/*
	 * Count only what was done: a trigger of the table's own may have kept
	 * the row (a BEFORE trigger returning NULL), or written it back as it
	 * was (NEW := OLD).
	 */
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION),
				 errmsg("a trigger of the table kept the row")));
	if (!f->delete)
	{
		bool		isnull;
		ItemPointer newtid = (ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0],
																		 SPI_tuptable->tupdesc, 1,
																		 &isnull));
		TupleTableSlot *slot = table_slot_create(f->rel, NULL);
		TupleDesc	desc = RelationGetDescr(f->rel);
		bool		should_free;
		HeapTuple	tuple;
		Datum	   *values;
		bool	   *nulls;
		bool		fully_due,
					complete;
		uint64		due;
		RetentionCutoffs cut;
		RetentionRow row;

		if (isnull || !table_tuple_fetch_row_version(f->rel, newtid, SnapshotAny, slot))
			elog(ERROR, "could not read back the row written at (%u,%u)",
				 ItemPointerGetBlockNumber(newtid), ItemPointerGetOffsetNumber(newtid));
		tuple = ExecFetchSlotHeapTuple(slot, false, &should_free);
		deform(tuple, desc, &values, &nulls);
		/* by time alone first: a row with nothing left to do needs no lookup */
		complete = expiry_read_row(f->t, values, nulls, &row);
		if (complete)
		{
			retention_cutoffs(decision_time(), &cut);
			due = expiry_due_columns(f->t, &cut, &row, &fully_due);
			if (due != 0 && expiry_needs_work(f->t, due, fully_due, false, values, nulls, true))
				due = row_due(f->t, values, nulls, &fully_due, &complete, false);
			else
				due = 0;
		}
		else
			due = 0;
		if (due != 0 && expiry_needs_work(f->t, due, fully_due, false, values, nulls, true))
			ereport(ERROR,
					(errcode(ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION),
					 errmsg("a trigger of the table wrote the row back as it was")));
		if (should_free)
			heap_freetuple(tuple);
		ExecDropSingleTupleTableSlot(slot);
	}
	SPI_finish();
}

/*
 * Delete or re-write (through the BEFORE trigger) the row at tid, as the
 * table's owner (restricted: the owner's code cannot change the writer's
 * session), in a subtransaction: the writer must not fail because of it.  Returns whether it succeeded.
 */
static bool
fixup_row(RetentionTable *t, Relation rel, ItemPointer tid, bool delete)
{
	Fixup		f = {t, rel, tid, delete};
	ErrorData  *volatile edata;

	/*
	 * A row written now, even from inside a sweep (by a trigger of the
	 * owner's), is decided as of its statement, as any write is, and is
	 * no sweep's re-write of a stored row: nothing of it is hashed.  The
	 * AFTER trigger counts it: its BEFORE trigger does not.
	 */
	RetentionDecision d = {0, true, RelationGetRelid(rel), current_decision->unheld, NULL};

	retention_decision_push(&d);
	PG_TRY();
	{
		edata = retention_run_restricted(t->owner, fixup_step, &f);
	}
	PG_FINALLY();
	{
		retention_decision_pop(&d);
	}
	PG_END_TRY();
	if (edata == NULL)
		return true;

	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("could not %s an expired row of \"%s\": %s",
					delete ? "delete" : "anonymize",
					RelationGetRelationName(rel), edata->message),
			 errdetail("The row was stored as written; the next sweep retries it."),
			 errhint("See retention.write_log.")));
	write_log(t->protected_relid, "failed", 1, edata->message);
	FreeErrorData(edata);
	return false;
}

/*
 * retention_expire_after: AFTER INSERT/UPDATE FOR EACH ROW, for rows that
 * passed the WHEN prefilter.  Deletes a fully due row (unless the table
 * keeps rows anonymized) and, for an INSERT, anonymizes what is due by
 * updating the row through the BEFORE trigger.
 */
Datum
retention_expire_after(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	tuple;
	RetentionTable *t;
	Datum	   *values;
	bool	   *isnull;
	bool		fully_due,
				complete;
	bool		inserting;
	uint64		due;

	check_trigger(fcinfo, "retention._expire_after");
	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	inserting = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event);
	tuple = inserting ? trigdata->tg_trigtuple : trigdata->tg_newtuple;

	/* retention's own re-write of a row: whoever issued it decides the rest */
	if (!inserting && RelationGetRelid(rel) == current_decision->rewriting)
		return PointerGetDatum(NULL);
	if (stored_as_written())
	{
		/* due as written (the trigger's WHEN): the next sweep must find it */
		t = retention_table(RelationGetRelid(rel));
		refuse_unprotected_shard(rel, t);
		if (OidIsValid(t->protected_relid))
			retention_sweep_note_as_written(RelationGetRelid(rel), t->protected_relid);
		return PointerGetDatum(NULL);
	}

	t = retention_table(RelationGetRelid(rel));
	refuse_unprotected_shard(rel, t);
	if (!OidIsValid(t->protected_relid) || t->ncolumns == 0)
		return PointerGetDatum(NULL);

	deform(tuple, desc, &values, &isnull);
	if (inserting && t->ended_at != InvalidAttrNumber && !isnull[t->ended_at - 1] &&
		ended_in_future(instant_of(t->ended_at_type, values[t->ended_at - 1])))
		refuse_future_end(rel);

	/*
	 * After an UPDATE the BEFORE trigger has applied what was due: only the
	 * deletion of a fully due row is left, and holds and consent can only
	 * keep more, so a row not fully due without them needs no lookup.
	 */
	if (!inserting)
	{
		RetentionRow row;
		RetentionCutoffs cut;

		if (t->keep_anonymized || !expiry_read_row(t, values, isnull, &row))
			return PointerGetDatum(NULL);
		retention_cutoffs(decision_time(), &cut);
		(void) expiry_due_columns(t, &cut, &row, &fully_due);
		if (!fully_due)
			return PointerGetDatum(NULL);
	}
	due = row_due(t, values, isnull, &fully_due, &complete, false);
	if (due == 0)
		return PointerGetDatum(NULL);

	if (fully_due && !t->keep_anonymized)
	{
		if (fixup_row(t, rel, &tuple->t_self, true) && !current_decision->quiet)
			write_log(t->protected_relid, "deleted", 1, NULL);
	}
	else if (inserting && expiry_needs_work(t, due, fully_due, false, values, isnull, true))
	{
		if (fixup_row(t, rel, &tuple->t_self, false) && !current_decision->quiet)
			write_log(t->protected_relid, "anonymized", 1, NULL);
	}
	return PointerGetDatum(NULL);
}

/*
 * What retention_due_at_write() keeps between the rows of a statement: the
 * argument types, and the bound of expiry_due_bound() for one table at one
 * decision time, while no cache was flushed.
 */
typedef struct DueAtWriteCache
{
	Oid			types[3];
	bool		valid;
	uint64		generation;
	TimestampTz now;
	Oid			relid;
	bool		protected;
	bool		refuse;
	bool		exact;
	TimestampTz bound;
} DueAtWriteCache;

/*
 * retention_due_at_write(tableoid, ended_at [, billing_anchor]): the WHEN
 * prefilter of the AFTER trigger.  True when some tagged column of a row
 * with these anchors would be due now if no consent or hold kept it: only
 * such rows queue a trigger event.  It runs for every row written, COPY's
 * included: where ended_at alone decides, one comparison with a bound
 * computed once per statement answers.
 */
Datum
retention_due_at_write(PG_FUNCTION_ARGS)
{
	DueAtWriteCache *cache = (DueAtWriteCache *) fcinfo->flinfo->fn_extra;
	RetentionTable *t;
	RetentionCutoffs cut;
	RetentionRow row;
	TimestampTz now;
	Oid			relid;
	bool		fully_due;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(DueAtWriteCache));
		cache->types[1] = get_fn_expr_argtype(fcinfo->flinfo, 1);
		cache->types[2] = PG_NARGS() > 2 ? get_fn_expr_argtype(fcinfo->flinfo, 2) : InvalidOid;
		fcinfo->flinfo->fn_extra = cache;
	}

	now = decision_time();
	relid = PG_GETARG_OID(0);
	if (!cache->valid || cache->generation != retention_cache_generation ||
		cache->now != now || cache->relid != relid)
	{
		/* a flush while this is computed makes the next row compute again */
		cache->generation = retention_cache_generation;
		t = retention_table(relid);
		cache->protected = OidIsValid(t->protected_relid) && t->ncolumns > 0;
		/* every row of a shard not protected here: the trigger refuses it */
		cache->refuse = OidIsValid(t->citus_table) && !OidIsValid(t->protected_relid);
		if (cache->protected)
		{
			retention_cutoffs(now, &cut);
			cache->bound = expiry_write_bound(t, &cut, &cache->exact);
		}
		cache->now = now;
		cache->relid = relid;
		cache->valid = true;
	}
	if (cache->refuse)
		PG_RETURN_BOOL(true);
	if (!cache->protected || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);

	memset(&row, 0, sizeof(row));
	row.ended_at = (cache->types[1] == TIMESTAMPOID) ?
		retention_timestamp_to_tz(PG_GETARG_TIMESTAMP(1)) : PG_GETARG_TIMESTAMPTZ(1);
	/* the trigger's WHEN tests the direction itself (_create_triggers()) */
	row.originated = true;

	/* an end to come: the AFTER trigger refuses it */
	if (row.ended_at > now + FUTURE_TOLERANCE)
		PG_RETURN_BOOL(true);
	/*
	 * Exact or not, a bound before now is that of every column's rule that
	 * keeps unconditionally: a row ended later has nothing due.
	 */
	if (cache->exact || (cache->bound < now && row.ended_at > cache->bound))
		PG_RETURN_BOOL(row.ended_at <= cache->bound);

	t = retention_table(relid);
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
	{
		row.billing_anchor = (cache->types[2] == TIMESTAMPOID) ?
			retention_timestamp_to_tz(PG_GETARG_TIMESTAMP(2)) : PG_GETARG_TIMESTAMPTZ(2);
		row.has_anchor = true;
	}
	retention_cutoffs(now, &cut);
	PG_RETURN_BOOL(expiry_due_columns(t, &cut, &row, &fully_due) != 0);
}

/*
 * retention.tagged_columns(tbl): the purpose-tagged columns of a table as
 * the C module sees them (purposes from the type modifier, method from
 * retention.column_method).
 */
Datum
retention_tagged_columns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RetentionTable *t;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	t = retention_table(PG_GETARG_OID(0));
	for (i = 0; i < t->ncolumns; i++)
	{
		const RetentionColumn *c = &t->columns[i];
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		Datum		purposes[RETENTION_NUM_PURPOSES];
		int			n = 0;
		int			p;

		/* as tagged: the type modifier's purposes, whatever the regime */
		for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
			if (c->tagged & PURPOSE_BIT(retention_purpose_order[p]))
				purposes[n++] = CStringGetTextDatum(retention_purpose_names[retention_purpose_order[p]]);
		values[0] = NameGetDatum(&c->attname);
		values[1] = ObjectIdGetDatum(retention_type_oid(c->kind));
		values[2] = PointerGetDatum(construct_array(purposes, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[3] = CStringGetTextDatum(retention_method_names[c->method]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
