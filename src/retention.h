/*-------------------------------------------------------------------------
 *
 * retention.h
 *	  Declarations shared by the modules of the retention extension.
 *
 * The vocabulary of the whole extension lives here: the legal purposes a
 * column may be kept for, the identifier types that carry them, and the
 * entry points each module offers the others.  Module-private details stay
 * in their .c files.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/retention.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RETENTION_H
#define RETENTION_H

#include "postgres.h"

#include "compat.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/nodes.h"
#include "storage/lockdefs.h"
#include "utils/relcache.h"

#define RETENTION_SCHEMA	"retention"
#define RETENTION_ADMIN_ROLE "retention_admin"

/*
 * Legal purposes (CPCE L34-1).  A purpose set is a bitmask of these; as a
 * type modifier it is stored as is, -1 meaning "no modifier", that is, kept
 * for no purpose (R1).  The numbering is part of the on-disk format of
 * pg_attribute.atttypmod: never renumber.  What a purpose keeps, and for
 * how long, is not here but in the rules of the legal regime in force
 * (policy.c): the first four are the seed's text's (regime fr-2004), the
 * others today's (fr-2025), which reads law_enforcement through them.
 */
typedef enum RetentionPurpose
{
	RETENTION_BILLING = 0,
	RETENTION_LAW_ENFORCEMENT = 1,
	RETENTION_MARKETING = 2,
	RETENTION_NETWORK_SECURITY = 3,
	/* today's L34-1 (regime fr-2025) */
	RETENTION_CONNECTION = 4,	/* II bis 3°: source of the connection, terminal */
	RETENTION_NATIONAL_SECURITY = 5,	/* III: under an injunction decree */
	RETENTION_LOCATION = 6,		/* V: under location consent */
	RETENTION_IDENTITY = 7,		/* II bis 1°: civil identity */
	RETENTION_ACCOUNT = 8,		/* II bis 2°: account data */
	RETENTION_PAYMENT = 9		/* II bis 2°: payment data */
} RetentionPurpose;

#define RETENTION_NUM_PURPOSES	10
#define PURPOSE_BIT(p)			(1 << (p))
#define PURPOSE_SET_ALL			((1 << RETENTION_NUM_PURPOSES) - 1)

typedef int32 PurposeSet;

/* typmod.c */
extern const char *const retention_purpose_names[RETENTION_NUM_PURPOSES];
extern const int retention_purpose_order[RETENTION_NUM_PURPOSES];
extern int	purpose_lookup(const char *name);
pg_noreturn extern void purpose_unknown_error(const char *name);
extern PurposeSet purpose_set_from_typmod(int32 typmod);
extern char *purpose_set_to_string(PurposeSet set);

/*
 * The purpose-tagged identifier types.  Each is stored like text; the kind
 * decides validation, normalization and the anonymized forms it accepts.
 */
typedef enum RetentionTypeKind
{
	RT_MSISDN = 0,
	RT_IMSI,
	RT_IMEI,
	RT_CELL,
	RT_IDENT
} RetentionTypeKind;

#define RT_NUM_KINDS	5
#define RT_NONE			(-1)

extern const char *const retention_type_names[RT_NUM_KINDS];

/*
 * What a stored value is: in clear, or in one of the anonymized forms that
 * the type accepts besides clear values.
 */
typedef enum RetentionValueForm
{
	RV_CLEAR,
	RV_GENERALIZED,				/* e.g. "33612*", "208-01-1234" */
	RV_PSEUDONYM,				/* "~k<key id>:<hex>" from method hash */
	RV_EMPTY					/* "": nothing, the erased form of a NOT NULL
								 * column whose default is the empty value */
} RetentionValueForm;

/* a pseudonym shows this many hex digits of its HMAC (96 bits) */
#define PSEUDONYM_HEX_LEN	24

/*
 * What happens to a value at its deadline (anonymize.c).  erase and
 * generalize anonymize; hash pseudonymizes (keyed HMAC-SHA-256), which the
 * law does not count as anonymization while the key exists.
 */
typedef enum RetentionMethod
{
	RM_ERASE = 0,
	RM_GENERALIZE,
	RM_HASH
} RetentionMethod;

#define RM_NUM_METHODS	3

/* types.c */
extern bool retention_normalize(RetentionTypeKind kind, const char *str, int len,
								StringInfo out, Node *escontext);
extern RetentionValueForm retention_value_form(RetentionTypeKind kind,
											   const char *str, int len);
extern text *retention_ip_generalize(const char *str, int len);

/*
 * anonymize.c
 *
 * retention_anonymize_value: the value (a text datum in the normal form of
 * kind) after method.  Returns NULL for "erase" and whenever nothing of the
 * value survives the method (e.g. generalizing a pseudonym).  Anonymized
 * values are left as they are (idempotent).  Raises 22023 for a method the
 * type does not support (generalize on ident).  Reads the current key
 * itself, whatever the caller's privileges: callers are retention's own
 * triggers and sweeps, or SQL functions that checked privileges first.
 */
extern const char *const retention_method_names[RM_NUM_METHODS];
extern int	method_lookup(const char *name);
pg_noreturn extern void method_unknown_error(const char *name);
extern text *retention_anonymize_value(RetentionTypeKind kind, text *value,
									   RetentionMethod method);
extern bool retention_method_supported(RetentionTypeKind kind, RetentionMethod method);
extern TimestampTz retention_generalize_timestamp(TimestampTz ts);

/* retention.c: configuration parameters */
extern bool retention_enabled;
extern char *retention_sweep_at;
extern int	retention_sweep_interval;
extern char *retention_databases;
extern int	retention_batch_size;
extern int	retention_log_keep;
extern int	retention_lock_timeout;
extern int	retention_batch_delay;
extern int	retention_max_wal_rate;
extern char *retention_timezone;
extern bool retention_parse_sweep_at(const char *value, int *minutes);

/* drop_guard.c */
extern bool retention_allow_drop_extension;
extern void retention_drop_guard_init(void);

/* worker.c */
extern void retention_worker_register(void);

/* catalog.c */
extern void retention_catalog_init(void);
extern Oid	retention_schema_oid(bool missing_ok);
extern int	retention_type_kind(Oid typid);
extern Oid	retention_type_oid(RetentionTypeKind kind);
extern void retention_invalidate_all(void);
extern void retention_register_flush(void (*callback) (Oid relid));
extern int	retention_pin_search_path(void);
extern ErrorData *retention_run_as(Oid userid, void (*step) (void *arg), void *arg);
extern ErrorData *retention_run_restricted(Oid userid, void (*step) (void *arg), void *arg);
extern void retention_unpin_search_path(int nestlevel);

/* citus.c: which relations Citus manages, and a shard's table */
extern bool retention_citus_present_in_db(void);
extern char *retention_citus_table_problem(Oid relid);
extern char *retention_citus_unknown_version(void);
extern bool retention_citus_shard_candidate(Oid relid);
extern Oid	retention_citus_shard(Oid relid, Oid *watch);

/*
 * locks.c: the locks that serialize retention's own work, which no other
 * role can take
 */
typedef enum RetentionLockKind
{
	RETENTION_LOCK_SWEEP = 0,	/* a sweep of a table (session lock) */
	RETENTION_LOCK_HOLD			/* hold() exclusive, sweep batches shared */
} RetentionLockKind;

extern bool retention_lock_acquire(RetentionLockKind kind, Oid relid, LOCKMODE mode,
								   bool session, bool dont_wait);
extern void retention_lock_release(RetentionLockKind kind, Oid relid, LOCKMODE mode,
								   bool session);
extern int64 retention_legacy_lock_key(RetentionLockKind kind, Oid relid);

#endif							/* RETENTION_H */
