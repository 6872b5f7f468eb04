/*-------------------------------------------------------------------------
 *
 * expiry.h
 *	  The retention rules: what a protected table is, when each of its
 *	  values falls due, and what becomes of it then.
 *
 * One engine for the expiry triggers (trigger.c), the sweep (sweep.c) and
 * the report: they all ask expiry.c, never decide for themselves.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/expiry.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RETENTION_EXPIRY_H
#define RETENTION_EXPIRY_H

#include "retention.h"
#include "policy.h"

#include "access/tupdesc.h"
#include "fmgr.h"
#include "executor/spi.h"
#include "utils/relcache.h"
#include "pgtime.h"
#include "utils/timestamp.h"

/* at most this many tagged columns per table (a bitmask of them is used) */
#define RETENTION_MAX_COLUMNS	64

typedef struct RetentionColumn
{
	AttrNumber	attnum;			/* in the relation the entry describes */
	NameData	attname;
	RetentionTypeKind kind;
	PurposeSet	tagged;			/* its type modifier's purposes */
	PurposeSet	purposes;		/* the rules of the regime in force that
								 * govern it (policy.c): what it is kept for */
	RetentionMethod method;		/* at the deadline (erase by default) */
	bool		notnull;		/* erased to the empty value, not NULL */
} RetentionColumn;

/*
 * The one definition, for C's queries, of a hold and a marketing consent
 * in force at a moment (a SQL expression; alias is the table's, moment an
 * expression).  The PL/pgSQL side reads them through retention._hold_active()
 * and retention._consent_active(), which say the same: keep them equal.
 * (C cannot call those: a database still at 1.0 runs this library.)
 */
#define HOLD_ACTIVE_SQL(alias, moment) \
	alias ".released_at IS NULL AND (" alias ".until IS NULL OR " alias ".until > " moment ")"
#define CONSENT_ACTIVE_SQL(alias, moment) \
	alias ".withdrawn_at IS NULL AND least(" alias ".valid_until, " alias ".contract_end) > " moment

/* what holds keep of a row (retention.hold reasons) */
typedef enum RetentionHold
{
	HOLD_NONE = 0,
	HOLD_BILLING,				/* billing_dispute: what is kept for billing */
	HOLD_ALL					/* judicial_request, quick_freeze: the row */
} RetentionHold;

/*
 * A relation as retention sees it: any table's tagged columns, and, when it
 * is protected (itself or through a partitioned ancestor), how.  Attribute
 * numbers are the relation's own, so that partitions with other layouts
 * work.  Cached per relation; rebuilt after relcache invalidation.
 */
typedef struct RetentionTable
{
	Oid			relid;			/* hash key */
	bool		valid;
	Oid			protected_relid;	/* relid, an ancestor, or a shard's table
									 * (or its ancestor); InvalidOid if not
									 * protected */
	Oid			owner;			/* of the relation: fix-ups run as it */
	AttrNumber	ended_at;
	Oid			ended_at_type;	/* TIMESTAMPTZOID or TIMESTAMPOID */
	AttrNumber	anchor;			/* billing anchor, or InvalidAttrNumber */
	Oid			anchor_type;
	AttrNumber	subscriber;		/* or InvalidAttrNumber */
	int			subscriber_index;	/* its place in columns[], or -1 */
	bool		keep_anonymized;	/* on_expiry = 'anonymize' */
	bool		has_marketing;	/* some column is kept for marketing */
	bool		has_location;	/* some column is kept under location consent */
	bool		has_must_keep;	/* some column has a rule that must keep */
	bool		contract;		/* subscriber table: ended_at is a contract's end */
	AttrNumber	originated;		/* boolean: the operator's subscriber
								 * originated the communication; or
								 * InvalidAttrNumber */
	int			ncolumns;
	RetentionColumn *columns;	/* in the protected table's column order */
	int			ntimestamps;	/* generalized when the row is kept
								 * anonymized */
	AttrNumber *timestamps;
	/* named like a Citus shard: what that makes it */
	bool		citus_watched;	/* its entry follows citus_watch */
	Oid			citus_watch;	/* rebuilt when this relation is invalidated
								 * (InvalidOid: any) */
	Oid			citus_table;	/* a shard here of this Citus table, or
								 * InvalidOid */
	/* prepared by trigger.c on first use, freed with the entry */
	SPIPlanPtr	update_plan;
	SPIPlanPtr	delete_plan;
} RetentionTable;

/* one row's facts, as the rules need them */
typedef struct RetentionRow
{
	TimestampTz ended_at;		/* the row is complete: not NULL */
	TimestampTz billing_anchor;
	bool		has_anchor;
	bool		consent;		/* an active marketing consent covers it */
	bool		location_consent;	/* an active location consent covers it */
	bool		originated;		/* billing may keep it (no originated column,
								 * or its value true) */
	RetentionHold hold;
} RetentionRow;

/* table.c: the relation's description; never NULL */
extern RetentionTable *retention_table(Oid relid);
extern SPIPlanPtr retention_kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes);

extern uint64 retention_cache_generation;
extern TimestampTz expiry_due_bound(const RetentionTable *t, const RetentionCutoffs *cut,
									bool *exact);
extern bool expiry_column_bound(const RetentionTable *t, int i, const RetentionCutoffs *cut,
								bool by_cutoff, bool originated, TimestampTz *bound, bool *exact);
extern TimestampTz expiry_write_bound(const RetentionTable *t, const RetentionCutoffs *cut,
									  bool *exact);
extern uint64 expiry_due_columns(const RetentionTable *t, const RetentionCutoffs *cut,
								 const RetentionRow *row, bool *fully_due);

extern bool expiry_row_from_args(FunctionCallInfo fcinfo, const RetentionTable *t,
								 RetentionRow *row, Datum **values, bool **isnull);
extern bool expiry_read_row(const RetentionTable *t, const Datum *values,
							const bool *isnull, RetentionRow *row);
extern void expiry_lookup_row(const RetentionTable *t, const Datum *values,
							  const bool *isnull, RetentionRow *row,
							  bool need_holds, bool need_consent);
extern bool expiry_location_consent(Datum subscriber, TimestampTz moment);
/* the values _sweep_row() and _column_states() take after their first five */
#define expiry_row_nargs(t) ((t)->ncolumns + ((t)->originated != InvalidAttrNumber ? 1 : 0))
#define expiry_has_consents(t) ((t)->has_marketing || (t)->has_location)
extern bool retention_table_has_holds(Oid root, TimestampTz moment, bool fresh);
extern bool expiry_apply(const RetentionTable *t, uint64 due, bool fully_due,
						 bool may_hash, Datum *values, bool *isnull, bool *replace);
extern bool expiry_needs_work(const RetentionTable *t, uint64 due, bool fully_due,
							  bool may_hash, const Datum *values, const bool *isnull,
							  bool timestamps);

extern bool expiry_anchor_bounded(const RetentionRow *row);
extern int	expiry_must_keep_rule(const RetentionColumn *c, const RetentionCutoffs *cut,
								  const RetentionRow *row);
extern TimestampTz expiry_kept_until(int p, const RetentionRow *row);
extern bool expiry_window_open(const RetentionCutoffs *cut, const RetentionRow *row, int p);

extern TimestampTz retention_timestamp_to_tz(Timestamp ts);
extern pg_tz *retention_zone(void);
extern void retention_zone_invalidate(void);
extern const char *retention_zone_name(void);
extern TimestampTz retention_instant_minus(TimestampTz t, const Interval *span);
extern TimestampTz retention_instant_plus(TimestampTz t, const Interval *span);

/* sweep.c */
extern TimestampTz retention_table_maxcut(const RetentionTable *t, const RetentionCutoffs *cut);
extern char *retention_row_args(Oid relid, Oid root, bool has_holds, const char *moment,
								char **ended_at);

/*
 * trigger.c: the decision context, on whose behalf and as of when the
 * expiry triggers decide.  A writer's statement decides as of its start
 * and counts what it changes.  Retention's own work (a sweep, a subject's
 * request, the fix-up of a row just written) pushes a context of its own
 * for the statements it runs, and pops it when they are done, error or
 * not; a transaction's abort drops what was left.
 */
typedef struct RetentionDecision
{
	TimestampTz moment;			/* decide as of this instant (a sweep's fixed
								 * cutoff; DT_NOEND: a subject's request); 0:
								 * as of each statement's start */
	bool		quiet;			/* the caller counts what changes: the
								 * triggers write no write_log row */
	Oid			rewriting;		/* retention's own re-write of rows of this
								 * relation: a write that changes nothing is
								 * skipped, a value that rested is hashed */
	Oid			unheld;			/* a relation the caller saw has no active
								 * hold, while a lock keeps new ones out */
	const struct RetentionDecision *outer;	/* the context pushed before */
} RetentionDecision;

extern const RetentionDecision *retention_decision(void);
extern void retention_decision_push(RetentionDecision *d);
extern void retention_decision_pop(RetentionDecision *d);
extern SPIPlanPtr retention_fixup_plan(RetentionTable *t, Relation rel, bool delete);
extern Oid	retention_extension_owner(void);

#endif							/* RETENTION_EXPIRY_H */
