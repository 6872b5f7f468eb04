/*-------------------------------------------------------------------------
 *
 * report.c
 *	  What the compliance report and verify() need from the rules: the
 *	  state of each tagged value of a row, and the SQL that asks for it.
 *
 * retention.report() and retention.verify() (SQL, in the extension
 * script) scan each protected table once with retention._column_states()
 * or retention._sweep_row(), which decide exactly as the triggers and the
 * sweep do (expiry.c).  Nothing here changes data.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/report.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/primnodes.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "expiry.h"

PG_FUNCTION_INFO_V1(retention_column_states);
PG_FUNCTION_INFO_V1(retention_row_args_sql);
PG_FUNCTION_INFO_V1(retention_due_prefilter_sql);
PG_FUNCTION_INFO_V1(retention_anchor_bounded);
PG_FUNCTION_INFO_V1(retention_instant);
PG_FUNCTION_INFO_V1(retention_window_open);
PG_FUNCTION_INFO_V1(retention_empty_default);

/*
 * The instant argument argno of an "any" anchor argument stands for: a
 * timestamptz as is, a timestamp read in retention's zone.
 */
static TimestampTz
instant_arg(FunctionCallInfo fcinfo, int argno)
{
	if (get_fn_expr_argtype(fcinfo->flinfo, argno) == TIMESTAMPOID)
		return retention_timestamp_to_tz(PG_GETARG_TIMESTAMP(argno));
	return PG_GETARG_TIMESTAMPTZ(argno);
}

/* the states _column_states() reports, one letter per tagged column */
#define STATE_NULL			'n'		/* no value */
#define STATE_ANONYMIZED	'a'		/* generalized or pseudonymized, as due */
#define STATE_KEPT			'k'		/* in clear, within a window */
#define STATE_OVERDUE		'o'		/* past its deadline, not yet as due */
#define STATE_HELD			'h'		/* past its deadline, kept by a hold */

static Oid
protected_root(Oid relid)
{
	RetentionTable *t = retention_table(relid);

	if (!OidIsValid(t->protected_relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" is not protected", get_rel_name(relid))));
	return t->protected_relid;
}

/*
 * retention._row_args(tbl): the argument list of _sweep_row() and
 * _column_states() for rows aliased "x" of tbl (a protected table).
 */
Datum
retention_row_args_sql(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Oid			root = protected_root(relid);
	bool		has_holds = retention_table_has_holds(root, GetCurrentTransactionStartTimestamp(),
													  false);

	PG_RETURN_TEXT_P(cstring_to_text(retention_row_args(relid, root, has_holds,
														"statement_timestamp()", NULL)));
}

/*
 * retention._due_prefilter(tbl): "x.ended_at <= ..." true of every row of
 * tbl that may have something due now: an index on ended_at answers it.
 */
Datum
retention_due_prefilter_sql(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	RetentionTable *t;
	RetentionCutoffs cut;
	TimestampTz maxcut;
	const char *ended_at;

	protected_root(relid);
	t = retention_table(relid);
	retention_cutoffs(GetCurrentStatementStartTimestamp(), &cut);
	maxcut = retention_table_maxcut(t, &cut);
	ended_at = quote_identifier(get_attname(relid, t->ended_at, false));
	if (TIMESTAMP_NOT_FINITE(maxcut))
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("x.%s IS NOT NULL", ended_at)));
	/* one second of margin for the decimal epoch; the row test is exact */
	PG_RETURN_TEXT_P(cstring_to_text(psprintf(t->ended_at_type == TIMESTAMPOID ?
											  "x.%s <= (pg_catalog.to_timestamp(%.6f) AT TIME ZONE 'UTC')" :
											  "x.%s <= pg_catalog.to_timestamp(%.6f)",
											  ended_at,
											  (double) (maxcut - SetEpochTimestamp()) / USECS_PER_SEC + 1)));
}

/*
 * retention._column_states(tableoid, ended_at, billing_anchor, consent,
 *							hold, VARIADIC tagged columns): one letter per
 * tagged column (see STATE_*), as of now.
 */
Datum
retention_column_states(PG_FUNCTION_ARGS)
{
	RetentionTable *t;
	RetentionCutoffs cut;
	RetentionRow row;
	uint64		due = 0,
				held_due = 0;
	bool		fully_due = false,
				held_fully = false;
	bool		complete;
	char	   *states;
	int			i;
	Datum	   *values;
	bool	   *isnull;
	Datum	   *rowvalues;
	bool	   *rownulls;
	int			natts = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	t = retention_table(PG_GETARG_OID(0));
	if (!OidIsValid(t->protected_relid) || PG_NARGS() - 5 != expiry_row_nargs(t))
		PG_RETURN_NULL();

	complete = expiry_row_from_args(fcinfo, t, &row, &rowvalues, &rownulls);
	if (complete)
	{
		/* consents left to C to look up (a location consent) are NULL */
		if (PG_ARGISNULL(3))
			expiry_lookup_row(t, rowvalues, rownulls, &row, false, true);
		else
			row.consent = PG_GETARG_BOOL(3);
		retention_cutoffs(GetCurrentStatementStartTimestamp(), &cut);
		/* due without holds, then with them: the difference is what they hold */
		due = expiry_due_columns(t, &cut, &row, &fully_due);
		held_due = due;
		held_fully = fully_due;
		if (!PG_ARGISNULL(4) && due != 0)
		{
			row.hold = PG_GETARG_INT32(4) == 1 ? HOLD_BILLING : HOLD_ALL;
			held_due = expiry_due_columns(t, &cut, &row, &held_fully);
		}
	}

	natts = 0;
	for (i = 0; i < t->ncolumns; i++)
		natts = Max(natts, t->columns[i].attnum);
	values = palloc0(sizeof(Datum) * natts);
	isnull = palloc(sizeof(bool) * natts);
	states = palloc(t->ncolumns + 1);
	for (i = 0; i < t->ncolumns; i++)
	{
		const RetentionColumn *c = &t->columns[i];
		AttrNumber	a = c->attnum;
		uint64		bit = UINT64CONST(1) << i;
		text	   *v;

		if (PG_ARGISNULL(5 + i) ||
			VARSIZE_ANY_EXHDR(DatumGetTextPP(PG_GETARG_DATUM(5 + i))) == 0)
		{
			/* the empty value is erased too (a NOT NULL column's) */
			states[i] = STATE_NULL;
			continue;
		}
		memset(isnull, true, sizeof(bool) * natts);
		isnull[a - 1] = false;
		values[a - 1] = PG_GETARG_DATUM(5 + i);
		if ((held_due & bit) && expiry_needs_work(t, bit, held_fully, true, values, isnull, false))
			states[i] = STATE_OVERDUE;
		else if ((due & bit) && expiry_needs_work(t, bit, fully_due, true, values, isnull, false))
			states[i] = STATE_HELD;
		else
		{
			v = DatumGetTextPP(values[a - 1]);
			states[i] = retention_value_form(c->kind, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v)) == RV_CLEAR ?
				STATE_KEPT : STATE_ANONYMIZED;
		}
	}
	states[t->ncolumns] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(states));
}

/*
 * retention._anchor_bounded(tableoid, ended_at, billing_anchor): is the
 * row's billing anchor later than expiry.c lets it count (ended_at plus
 * the billing ceiling)?  report() counts such rows: their billing
 * deadline is not the one the anchor says.
 */
Datum
retention_anchor_bounded(PG_FUNCTION_ARGS)
{
	RetentionRow row;
	RetentionCutoffs cut;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	memset(&row, 0, sizeof(row));
	row.ended_at = instant_arg(fcinfo, 1);
	row.billing_anchor = instant_arg(fcinfo, 2);
	row.has_anchor = true;
	/* loads the policy, whose billing ceiling is the bound */
	retention_cutoffs(GetCurrentStatementStartTimestamp(), &cut);
	PG_RETURN_BOOL(expiry_anchor_bounded(&row));
}

/*
 * retention._instant(timestamp): the instant a timestamp-without-time-zone
 * value of a protected table stands for, read in retention's zone (see
 * retention_zone()), whatever the session's TimeZone.
 */
Datum
retention_instant(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(retention_timestamp_to_tz(PG_GETARG_TIMESTAMP(0)));
}

/*
 * retention._window_open(purpose, ended_at, billing_anchor): is the
 * purpose's window open for a row with these anchors now (holds and
 * consents aside)?  A row in progress is open.  The views of
 * retention.expose() show the rows it says, deciding as the rules do: the
 * window capped by its ceiling, the anchor bounded, timestamp columns read
 * in retention's zone.
 */
Datum
retention_window_open(PG_FUNCTION_ARGS)
{
	RetentionRow row;
	RetentionCutoffs cut;
	int			p;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	if (PG_ARGISNULL(1))
		PG_RETURN_BOOL(true);
	p = purpose_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (p < 0)
		purpose_unknown_error(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	memset(&row, 0, sizeof(row));
	row.ended_at = instant_arg(fcinfo, 1);
	/* the views test the direction themselves (retention._exposure_sql()) */
	row.originated = true;
	if (!PG_ARGISNULL(2))
	{
		row.billing_anchor = instant_arg(fcinfo, 2);
		row.has_anchor = (p == RETENTION_BILLING);
	}
	retention_cutoffs(GetCurrentStatementStartTimestamp(), &cut);
	PG_RETURN_BOOL(expiry_window_open(&cut, &row, p));
}

/*
 * retention._anonymized(value, type): is a tagged value (as text) erased
 * (NULL, or the empty value a NOT NULL column is erased to) or generalized?  A value in clear, or a pseudonym (personal data as long as
 * its key exists), is not.  For report() and verify() on the copies of
 * tagged values that no sweep reaches.
 */
PG_FUNCTION_INFO_V1(retention_anonymized);

Datum
retention_anonymized(PG_FUNCTION_ARGS)
{
	text	   *value;
	int			kind;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	if (PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	value = PG_GETARG_TEXT_PP(0);
	kind = retention_type_kind(getBaseType(PG_GETARG_OID(1)));
	if (kind == RT_NONE)
		PG_RETURN_BOOL(false);
	switch (retention_value_form((RetentionTypeKind) kind, VARDATA_ANY(value),
								 VARSIZE_ANY_EXHDR(value)))
	{
		case RV_GENERALIZED:
		case RV_EMPTY:
			PG_RETURN_BOOL(true);
		case RV_CLEAR:
		case RV_PSEUDONYM:
			break;
	}
	PG_RETURN_BOOL(false);
}

/*
 * Is node, a column default, the empty string whatever is evaluated?  Only
 * a constant of a string type counts, under casts that keep a string as it
 * is: built-in ones and retention's own (the types' input functions map
 * the empty string to itself).  Nothing is evaluated: a default is the
 * table owner's expression, and this runs as retention's owner.
 */
static bool
empty_constant(Node *node)
{
	Oid			nsp = retention_schema_oid(true);

	for (;;)
	{
		if (node == NULL)
			return false;
		if (IsA(node, Const))
		{
			Const	   *c = (Const *) node;
			char		category;
			bool		preferred;

			if (c->constisnull || c->constlen != -1)
				return false;
			get_type_category_preferred(getBaseType(c->consttype), &category, &preferred);
			return category == TYPCATEGORY_STRING &&
				VARSIZE_ANY_EXHDR(DatumGetPointer(c->constvalue)) == 0;
		}
		else if (IsA(node, RelabelType))
			node = (Node *) ((RelabelType *) node)->arg;
		else if (IsA(node, CoerceToDomain))
			node = (Node *) ((CoerceToDomain *) node)->arg;
		else if (IsA(node, CoerceViaIO))
		{
			CoerceViaIO *io = (CoerceViaIO *) node;
			Oid			target = getBaseType(io->resulttype);

			if (target >= FirstNormalObjectId && retention_type_kind(target) == RT_NONE)
				return false;
			node = (Node *) io->arg;
		}
		else if (IsA(node, FuncExpr))
		{
			FuncExpr   *f = (FuncExpr *) node;

			if ((f->funcformat != COERCE_IMPLICIT_CAST && f->funcformat != COERCE_EXPLICIT_CAST) ||
				f->args == NIL ||
				(f->funcid >= FirstNormalObjectId && get_func_namespace(f->funcid) != nsp))
				return false;
			node = (Node *) linitial(f->args);
		}
		else
			return false;
	}
}

/*
 * retention._empty_default(tbl, column): is the column's default (its own,
 * or its domain's) the empty value?  Then a NOT NULL tagged column can be
 * erased to it: what a writer stores when it has nothing is what erasing
 * leaves.
 */
Datum
retention_empty_default(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Name		col = PG_GETARG_NAME(1);
	AttrNumber	attnum = get_attnum(relid, NameStr(*col));
	Relation	rel;
	bool		result;

	if (attnum <= 0)
		PG_RETURN_BOOL(false);
	rel = relation_open(relid, AccessShareLock);
	result = empty_constant(build_column_default(rel, attnum));
	relation_close(rel, AccessShareLock);
	PG_RETURN_BOOL(result);
}
