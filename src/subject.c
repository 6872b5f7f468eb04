/*-------------------------------------------------------------------------
 *
 * subject.c
 *	  Actions on one data subject: anonymize now everything of a subscriber
 *	  in a protected table (a subject's request, the end of a contract).
 *
 * Uses the rules of expiry.c with every window over: each tagged value of
 * the subscriber's completed calls gets its column's method, hashed values
 * are erased, and rows with nothing personal left are deleted or kept
 * anonymized as the table says.  Holds still hold: held rows are counted
 * and left (billing disputes keep what is kept for billing, the rest goes).
 * Calls in progress are left for their own deadlines.
 *
 * The SQL entry point, retention.anonymize(tbl, subscriber), checks
 * privileges and writes the audit log; this file does the work.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/subject.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "expiry.h"

PG_FUNCTION_INFO_V1(retention_anonymize_subscriber);


/*
 * retention._anonymize_subscriber(tbl regclass, subscriber text, everything bool)
 *		returns (rows_anonymized bigint, rows_deleted bigint, rows_held bigint)
 *
 * With everything, every window is over (a subject's request); without,
 * the rules apply as of now, at once rather than at the next sweep (after
 * a consent is withdrawn).
 */
/*
 * After the fix-up UPDATE ... RETURNING ctid of a row: is nothing left to
 * do in the row it wrote?  A trigger of the table's own may have written
 * it back as it was.
 */
static bool
rewritten_done(RetentionTable *t, Relation rel, TimestampTz moment)
{
	bool		n;
	ItemPointer newtid = (ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0],
																	 SPI_tuptable->tupdesc, 1, &n));
	HeapTupleData tuple;
	Buffer		buf;
	Datum	   *values;
	bool	   *isnull;
	RetentionCutoffs cut;
	RetentionRow row;
	uint64		due;
	bool		fully_due;
	bool		done = true;

	if (n)
		return false;
	tuple.t_self = *newtid;
	if (!heap_fetch(rel, GetLatestSnapshot(), &tuple, &buf, false))
		return true;			/* deleted by the AFTER trigger: done */
	values = palloc(sizeof(Datum) * RelationGetDescr(rel)->natts);
	isnull = palloc(sizeof(bool) * RelationGetDescr(rel)->natts);
	heap_deform_tuple(&tuple, RelationGetDescr(rel), values, isnull);
	if (expiry_read_row(t, values, isnull, &row))
	{
		expiry_lookup_row(t, values, isnull, &row, true, expiry_has_consents(t) && moment != DT_NOEND);
		retention_cutoffs(moment, &cut);
		due = expiry_due_columns(t, &cut, &row, &fully_due);
		done = due == 0 || !expiry_needs_work(t, due, fully_due, true, values, isnull, true);
	}
	ReleaseBuffer(buf);
	return done;
}

Datum
retention_anonymize_subscriber(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	text	   *subscriber = PG_GETARG_TEXT_PP(1);
	TimestampTz moment = PG_GETARG_BOOL(2) ? DT_NOEND : GetCurrentTransactionStartTimestamp();
	RetentionTable *root = retention_table(relid);
	TupleDesc	resdesc;
	Datum		result[3];
	bool		nulls[3] = {false, false, false};
	int64		anonymized = 0,
				deleted = 0,
				held = 0;
	char	   *sql;
	int			ret;
	uint64		i,
				nrows;
	SPITupleTable *rows;
	RetentionDecision decision = {0, true, InvalidOid, InvalidOid, NULL};
	int			nestlevel;
	Oid			save_userid;
	int			save_sec_context;

	if (get_call_result_type(fcinfo, NULL, &resdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (root->protected_relid != relid)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" is not protected", get_rel_name(relid))));
	if (root->subscriber == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no subscriber column", get_rel_name(relid)),
				 errhint("Protect it with retention.protect(..., subscriber => 'column').")));
	/* a Citus table: its rows are in shards, out of reach (citus.c) */
	{
		char	   *citus = retention_citus_table_problem(relid);

		if (citus != NULL)
		{
			citus[0] = pg_toupper((unsigned char) citus[0]);
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot anonymize the subscriber's rows of table \"%s\"", get_rel_name(relid)),
					 errdetail("%s.", citus),
					 errhint("Retention does not enforce Citus tables yet.  See docs/citus.md.")));
		}
	}

	nestlevel = retention_pin_search_path();
	SPI_connect();

	/* the subscriber's rows, locked, wherever they are (partitions too) */
	sql = psprintf("SELECT tableoid, ctid FROM %s WHERE %s = $1 AND %s IS NOT NULL FOR UPDATE",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											  get_rel_name(relid)),
				   quote_identifier(get_attname(relid, root->subscriber, false)),
				   quote_identifier(get_attname(relid, root->ended_at, false)));
	ret = SPI_execute_with_args(sql, 1, (Oid[]) {TEXTOID},
								(Datum[]) {PointerGetDatum(subscriber)}, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	nrows = SPI_processed;

	/* the rows are re-written as of moment, counted here */
	decision.moment = moment;
	retention_decision_push(&decision);
	PG_TRY();
	{
		for (i = 0; i < nrows; i++)
		{
			bool		n;
			Oid			leaf = DatumGetObjectId(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &n));
			ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(rows->vals[i],
																		  rows->tupdesc, 2, &n));
			RetentionTable *t = retention_table(leaf);
			Relation	rel = relation_open(leaf, NoLock);
			HeapTupleData tuple;
			Buffer		buf;
			Datum	   *values;
			bool	   *isnull;
			RetentionCutoffs cut;
			RetentionRow row;
			uint64		due;
			bool		fully_due;

			/* the row as it is now */
			tuple.t_self = *tid;
			if (!heap_fetch(rel, GetLatestSnapshot(), &tuple, &buf, false))
			{
				relation_close(rel, NoLock);
				continue;
			}
			values = palloc(sizeof(Datum) * RelationGetDescr(rel)->natts);
			isnull = palloc(sizeof(bool) * RelationGetDescr(rel)->natts);
			heap_deform_tuple(&tuple, RelationGetDescr(rel), values, isnull);

			if (!expiry_read_row(t, values, isnull, &row))
			{
				ReleaseBuffer(buf);
				relation_close(rel, NoLock);
				continue;
			}
			expiry_lookup_row(t, values, isnull, &row, true, expiry_has_consents(t) && moment != DT_NOEND);
			retention_cutoffs(moment, &cut);
			due = expiry_due_columns(t, &cut, &row, &fully_due);
			if (row.hold != HOLD_NONE)
				held++;
			/*
			 * The change runs as the table's owner, restricted (as VACUUM
			 * runs an owner's code): the owner's triggers must not run with
			 * the rights of the superuser who owns retention.anonymize().
			 */
			GetUserIdAndSecContext(&save_userid, &save_sec_context);
			if (fully_due && !t->keep_anonymized)
			{
				SetUserIdAndSecContext(t->owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
									   SECURITY_RESTRICTED_OPERATION);
				ret = SPI_execute_plan(retention_fixup_plan(t, rel, true),
									   (Datum[]) {PointerGetDatum(tid)}, NULL, false, 1);
				SetUserIdAndSecContext(save_userid, save_sec_context);
				if (ret != SPI_OK_DELETE)
					elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
				if (SPI_processed != 1)
					ereport(WARNING,
							(errcode(ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION),
							 errmsg("a trigger of \"%s\" kept a row of the subscriber",
									RelationGetRelationName(rel)),
							 errdetail("It is not counted as deleted.")));
				deleted += SPI_processed;
			}
			else if (due != 0 && expiry_needs_work(t, due, fully_due, true, values, isnull, true))
			{
				decision.rewriting = leaf;
				/* the BEFORE UPDATE trigger applies the rules, as of the same moment */
				SetUserIdAndSecContext(t->owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
									   SECURITY_RESTRICTED_OPERATION);
				ret = SPI_execute_plan(retention_fixup_plan(t, rel, false),
									   (Datum[]) {PointerGetDatum(tid)}, NULL, false, 1);
				SetUserIdAndSecContext(save_userid, save_sec_context);
				if (ret != SPI_OK_UPDATE_RETURNING)
					elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
				if (SPI_processed == 1 && rewritten_done(t, rel, moment))
					anonymized++;
				else
					ereport(WARNING,
							(errcode(ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION),
							 errmsg("a trigger of \"%s\" kept a row of the subscriber as it was",
									RelationGetRelationName(rel)),
							 errdetail("It is not counted as anonymized.")));
			}
			ReleaseBuffer(buf);
			relation_close(rel, NoLock);
		}
	}
	PG_FINALLY();
	{
		retention_decision_pop(&decision);
	}
	PG_END_TRY();

	SPI_finish();
	retention_unpin_search_path(nestlevel);

	result[0] = Int64GetDatum(anonymized);
	result[1] = Int64GetDatum(deleted);
	result[2] = Int64GetDatum(held);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(resdesc), result, nulls)));
}
