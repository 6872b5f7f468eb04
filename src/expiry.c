/*-------------------------------------------------------------------------
 *
 * expiry.c
 *	  The retention rules (SPEC 2): which values of a row are due, and what
 *	  becomes of them, from a row's facts.  The regime's rules are
 *	  policy.c's, the tables table.c's, holds and consents holds.c's, the
 *	  clock instant.c's.
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

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "expiry.h"

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
 * expiry_column_bound: the latest ended_at at which tagged column i of a
 * complete row of t, without consent or hold, can be due at cut.  Rules
 * kept only under consent do not count (consents end by events, which ask
 * for a full pass).  A rule kept on a condition of the row (a decree, the
 * direction) counts by its cutoff where by_cutoff (the expiry triggers
 * decided the rest when the row was written), else as keeping nothing;
 * where originated, the direction is taken as true.  Returns false where a
 * rule counts from the billing anchor, whose deadline is not ended_at's.
 * *exact is cleared where the bound is only an upper one.
 */
bool
expiry_column_bound(const RetentionTable *t, int i, const RetentionCutoffs *cut,
					bool by_cutoff, bool originated, TimestampTz *bound, bool *exact)
{
	TimestampTz b = DT_NOEND;
	bool		anchored = false;
	int			p;

	for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
	{
		const RetentionRule *r;

		if ((t->columns[i].purposes & PURPOSE_BIT(p)) == 0)
			continue;
		r = retention_rule(p);
		if (r->condition == RULE_CONSENT || r->condition == RULE_LOCATION_CONSENT)
			continue;
		if (r->billing_anchor && t->anchor != InvalidAttrNumber)
		{
			anchored = true;
			continue;
		}
		if (r->condition != RULE_NONE && !by_cutoff &&
			!(r->condition == RULE_ORIGINATED && originated))
		{
			/* a decree or the direction may keep nothing: due when it ends */
			*exact = false;
			continue;
		}
		b = Min(b, cut->cutoff[p]);
	}
	if (anchored)
	{
		/* due when the anchor's window ends, whatever ended_at is */
		b = Min(b, cut->now);
		*exact = false;
	}
	else if (b == DT_NOEND)
	{
		/* kept under consent or a condition only: due when the call ends */
		b = cut->now;
		*exact = false;
	}
	*bound = b;
	return !anchored;
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
static TimestampTz
due_bound(const RetentionTable *t, const RetentionCutoffs *cut, bool *exact, bool originated)
{
	TimestampTz bound = DT_NOBEGIN;
	int			i;

	*exact = true;
	for (i = 0; i < t->ncolumns; i++)
	{
		TimestampTz b;

		(void) expiry_column_bound(t, i, cut, false, originated, &b, exact);
		bound = Max(bound, b);
	}
	return bound;
}

TimestampTz
expiry_due_bound(const RetentionTable *t, const RetentionCutoffs *cut, bool *exact)
{
	return due_bound(t, cut, exact, t->originated == InvalidAttrNumber);
}

/*
 * expiry_write_bound: the same, for a row the operator's subscriber
 * originated (the expiry trigger's WHEN clause lets the others through
 * whatever their end).
 */
TimestampTz
expiry_write_bound(const RetentionTable *t, const RetentionCutoffs *cut, bool *exact)
{
	return due_bound(t, cut, exact, true);
}

static TimestampTz
timestamp_value(Oid type, Datum d)
{
	if (type == TIMESTAMPOID)
		return retention_timestamp_to_tz(DatumGetTimestamp(d));
	return DatumGetTimestampTz(d);
}

/*
 * expiry_row_from_args: the arguments of retention._sweep_row() and
 * retention._column_states() (tableoid, ended_at, billing_anchor, consent,
 * hold, VARIADIC the tagged values in t's column order, then the
 * originated column's value where t has one) as a row's facts, and its
 * tagged values laid out by attribute number for the rules.  Consent and
 * holds are the caller's (their arguments mean different things to each).
 * Returns false for a row in progress (ended_at NULL).  The anchors'
 * argument types are cached in fn_extra.
 */
bool
expiry_row_from_args(FunctionCallInfo fcinfo, const RetentionTable *t, RetentionRow *row,
					 Datum **values, bool **isnull)
{
	Oid		   *types = (Oid *) fcinfo->flinfo->fn_extra;
	int			natts = 0;
	int			i;

	if (types == NULL)
	{
		types = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid) * 3);
		types[1] = get_fn_expr_argtype(fcinfo->flinfo, 1);
		types[2] = get_fn_expr_argtype(fcinfo->flinfo, 2);
		fcinfo->flinfo->fn_extra = types;
	}

	/* the tagged values, laid out by attribute number */
	for (i = 0; i < t->ncolumns; i++)
		natts = Max(natts, t->columns[i].attnum);
	*values = palloc0(sizeof(Datum) * Max(natts, 1));
	*isnull = palloc(sizeof(bool) * Max(natts, 1));
	memset(*isnull, true, sizeof(bool) * Max(natts, 1));
	for (i = 0; i < t->ncolumns; i++)
	{
		AttrNumber	a = t->columns[i].attnum;

		(*isnull)[a - 1] = PG_ARGISNULL(5 + i);
		if (!PG_ARGISNULL(5 + i))
			(*values)[a - 1] = PG_GETARG_DATUM(5 + i);
	}

	memset(row, 0, sizeof(*row));
	row->originated = (t->originated == InvalidAttrNumber ||
					   (!PG_ARGISNULL(5 + t->ncolumns) && PG_GETARG_BOOL(5 + t->ncolumns)));
	if (PG_ARGISNULL(1))
		return false;
	row->ended_at = (types[1] == TIMESTAMPOID) ?
		retention_timestamp_to_tz(PG_GETARG_TIMESTAMP(1)) : PG_GETARG_TIMESTAMPTZ(1);
	if (!PG_ARGISNULL(2))
	{
		row->billing_anchor = (types[2] == TIMESTAMPOID) ?
			retention_timestamp_to_tz(PG_GETARG_TIMESTAMP(2)) : PG_GETARG_TIMESTAMPTZ(2);
		row->has_anchor = true;
	}
	return true;
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
