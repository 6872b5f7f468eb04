/*-------------------------------------------------------------------------
 *
 * policy.h
 *	  The legal regime in force, as the rules apply it: per purpose, its
 *	  rule (must or may keep, floor, window, ceiling, anchor, condition),
 *	  which rule a tagged purpose of each type reads as, the dated legal
 *	  bases, and the cutoffs they give at a moment.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/policy.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RETENTION_POLICY_H
#define RETENTION_POLICY_H

#include "retention.h"

#include "datatype/timestamp.h"

/* what, besides time, a rule needs of a row to keep it */
typedef enum RuleCondition
{
	RULE_NONE = 0,
	RULE_CONSENT,				/* an active marketing consent (IV ¶2) */
	RULE_LOCATION_CONSENT,		/* an active location consent (V) */
	RULE_DECREE,				/* a decree in force when it ended (III) */
	RULE_ORIGINATED				/* the operator's subscriber originated it
								 * (IV ¶1, R10-14) */
} RuleCondition;

typedef struct RetentionRule
{
	bool		in_force;		/* the regime in force has this rule */
	bool		must_keep;		/* a floor binds: erasing earlier is an
								 * offence too */
	bool		billing_anchor; /* counted from the table's billing anchor */
	RuleCondition condition;
	bool		has_window;		/* false: kept only under consent */
	Interval	window;			/* the operator's, or the default */
	bool		has_ceiling;
	Interval	ceiling;
	bool		has_floor;
	Interval	floor;
	char	   *citation;		/* the paragraph in force, for messages */
} RetentionRule;

/*
 * The moment a decision is taken for ("now": the statement's start, or the
 * sweep's fixed cutoff) and, for each purpose, the latest anchor whose
 * window has ended at that moment.  A value is kept for purpose p while its
 * anchor is later than cutoff[p].  The moment DT_NOEND is a data subject's
 * erasure request: every rule that may keep is over, every rule that must
 * keep counts as of the transaction's start.
 */
typedef struct RetentionCutoffs
{
	TimestampTz now;
	TimestampTz cutoff[RETENTION_NUM_PURPOSES];
} RetentionCutoffs;

extern void retention_policy_load(void);
extern void retention_policy_invalidate(void);
extern bool retention_policy_catalog_rel(Oid relid);
extern const RetentionRule *retention_rule(int purpose);
extern const char *retention_regime_in_force(void);
extern PurposeSet retention_column_rules(RetentionTypeKind kind, PurposeSet tagged,
										 bool contract);
extern bool retention_basis_covers(int purpose, TimestampTz at);
extern void retention_cutoffs(TimestampTz now, RetentionCutoffs *cut);

/* calendar arithmetic on instants, in UTC (expiry.c) */
extern TimestampTz retention_instant_shift_or(TimestampTz t, const Interval *span, bool plus,
											  TimestampTz if_out);

#endif							/* RETENTION_POLICY_H */
