/*-------------------------------------------------------------------------
 *
 * anonymize.c
 *	  What happens to a value at its deadline: erase, generalize or hash.
 *
 * retention_anonymize_value() is the one entry point: the expiry trigger
 * and the sweep call it from C on values of any tagged type, and the SQL
 * functions retention.anonymize(value, method) are thin wrappers around
 * it.  The three methods:
 *
 *	 erase		  the value goes: NULL
 *	 generalize   a coarser value of the same type, in the generalized form
 *				  the type accepts (see types.c): msisdn keeps its country
 *				  code and operator prefix, imsi its MCC+MNC, imei its TAC,
 *				  cell its MCC-MNC-AREA; ident, when it is an IP address,
 *				  its /24 (IPv4) or /48 (IPv6) prefix, and nothing otherwise
 *	 hash		  a keyed HMAC-SHA-256 of the normalized value, computed by
 *				  pgcrypto, as ~k<key id>:<24 hex digits>
 *
 * The current key of method hash lives in table retention.key, which no
 * role but superusers may read.  This file reads it directly from the heap,
 * without SPI and without privilege checks, because it runs on behalf of
 * whichever role fired a trigger; it caches it per backend and drops the
 * cache when the table changes (a statement trigger broadcasts a relcache
 * invalidation, see catalog.c), so that a rotation reaches every session
 * at its next transaction at the latest.  The key never leaves C: it goes
 * from the table to pgcrypto's C function and is never an SQL parameter,
 * so it cannot show in logs, errors or pg_stat_statements.
 *
 * Deciding when a value is due, and which method a column has, is not this
 * file's business (trigger.c, sweep.c); managing keys is SQL's
 * (retention--1.0.sql: rotate_key, destroy_keys, export_keys, import_key).
 *
 * Copyright (c) 2026, retention developers
 *
 * src/anonymize.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "retention.h"

PG_FUNCTION_INFO_V1(retention_anonymize_msisdn);
PG_FUNCTION_INFO_V1(retention_anonymize_imsi);
PG_FUNCTION_INFO_V1(retention_anonymize_imei);
PG_FUNCTION_INFO_V1(retention_anonymize_cell);
PG_FUNCTION_INFO_V1(retention_anonymize_ident);
PG_FUNCTION_INFO_V1(retention_anonymize_timestamptz);
PG_FUNCTION_INFO_V1(retention_random_bytes);

const char *const retention_method_names[RM_NUM_METHODS] = {
	"erase", "generalize", "hash"
};

/*
 * The key table, retention.key.  Its layout is fixed by the extension
 * script; key_table_check() verifies it before the first read.
 */
#define KEY_TABLE				"key"
#define Anum_key_id				1	/* integer, the number in ~k<id>: */
#define Anum_key_key			2	/* bytea, RETENTION_KEY_LEN bytes */
#define Anum_key_retired_at		4	/* timestamptz, NULL for the current key */
#define RETENTION_KEY_LEN		32

/* "~k" + at most 9 digits + ":" + NUL */
#define PSEUDONYM_PREFIX_MAX	16

/*
 * The current key, cached per backend.  key_datum is a bytea in
 * TopMemoryContext, allocated once and wiped when the cache is dropped.
 */
static bool key_valid = false;
static Oid	key_relid = InvalidOid;
static bytea *key_datum = NULL;
static char key_prefix[PSEUDONYM_PREFIX_MAX];
static int	key_prefix_len = 0;
static bool key_callback_registered = false;

/* pgcrypto's C functions, looked up once per backend */
static PGFunction pgcrypto_hmac = NULL;
static PGFunction pgcrypto_random_bytes = NULL;
static text *hmac_algorithm = NULL;

/*
 * Per call site of the SQL functions: the method, when the argument is a
 * constant, and whether the current role may hash.
 */
typedef struct AnonymizeCallCache
{
	bool		method_known;
	RetentionMethod method;
	Oid			userid;			/* whom hash_allowed is about */
	bool		hash_allowed;
} AnonymizeCallCache;


/* ---------------------------------------------------------------------
 * Methods
 * ---------------------------------------------------------------------
 */

/* the method called name (case-insensitive), or -1 */
int
method_lookup(const char *name)
{
	int			i;

	for (i = 0; i < RM_NUM_METHODS; i++)
		if (pg_strcasecmp(name, retention_method_names[i]) == 0)
			return i;
	return -1;
}

void
method_unknown_error(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown anonymization method \"%s\"", name),
			 errhint("Valid methods are erase, generalize and hash.")));
}

/*
 * Every type has every method.  (An ident generalizes only when it is an IP
 * address; any other ident has no coarser form, and generalizing erases it.)
 */
bool
retention_method_supported(RetentionTypeKind kind, RetentionMethod method)
{
	return true;
}

static void
method_unsupported_error(RetentionTypeKind kind, RetentionMethod method)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("method \"%s\" is not supported for type %s",
					retention_method_names[method], retention_type_names[kind]),
			 errdetail("A value of type %s has no coarser form that would be anonymous.",
					   retention_type_names[kind]),
			 errhint("Use method \"erase\" or \"hash\".")));
}


/* ---------------------------------------------------------------------
 * Generalization
 * ---------------------------------------------------------------------
 */

/*
 * msisdn: a generalized number keeps its country code and operator prefix,
 * and always hides at least MSISDN_MIN_HIDDEN digits, so that it stands
 * for a block of at least a million numbers.
 *
 * ITU-T E.164 country codes are prefix-free: 1 (NANP) and 7 (Russia,
 * Kazakhstan) have one digit, the codes below two, all others three.
 */
#define MSISDN_MIN_HIDDEN		6
#define MSISDN_DEFAULT_PREFIX	2

/* the number made of digits[0..n), n <= 3 */
static inline int
digits_value(const char *digits, int n)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
		v = v * 10 + (digits[i] - '0');
	return v;
}

/* length of the country code that digits[0..n) starts with */
static int
e164_country_code_len(const char *digits, int n)
{
	if (digits[0] == '1' || digits[0] == '7')
		return 1;
	if (n < 2)
		return n;
	switch (digits_value(digits, 2))
	{
		case 20:
		case 27:
		case 30:
		case 31:
		case 32:
		case 33:
		case 34:
		case 36:
		case 39:
		case 40:
		case 41:
		case 43:
		case 44:
		case 45:
		case 46:
		case 47:
		case 48:
		case 49:
		case 51:
		case 52:
		case 53:
		case 54:
		case 55:
		case 56:
		case 57:
		case 58:
		case 60:
		case 61:
		case 62:
		case 63:
		case 64:
		case 65:
		case 66:
		case 81:
		case 82:
		case 84:
		case 86:
		case 90:
		case 91:
		case 92:
		case 93:
		case 94:
		case 95:
		case 98:
			return 2;
		default:
			return Min(n, 3);
	}
}

/*
 * How many digits of the national number name the operator or the area,
 * where the numbering plan of country code cc is known;
 * MSISDN_DEFAULT_PREFIX elsewhere.
 */
static int
msisdn_prefix_digits(int cc)
{
	switch (cc)
	{
		case 1:					/* NANP: the area code (NPA) */
		case 7:					/* Russia, Kazakhstan: ABC or DEF code */
		case 32:				/* Belgium: 4xx mobile ranges, area codes */
		case 33:				/* France: Z+AB, the ARCEP block (6 12) */
		case 34:				/* Spain: 6xx/7xx mobile ranges, 9xx areas */
		case 39:				/* Italy: 3xx mobile operator codes */
		case 49:				/* Germany: 15x/16x/17x mobile operators */
		case 262:				/* Réunion, Mayotte: 262, 269, 639, 692, 693 */
		case 590:				/* Guadeloupe, Saint-Martin, Saint-Barthélemy */
		case 594:				/* French Guiana: 594, 694 */
		case 596:				/* Martinique: 596, 696, 697 */
			return 3;
		default:
			return MSISDN_DEFAULT_PREFIX;
	}
}

/*
 * How many leading digits of an msisdn (clear, or already generalized)
 * its generalization keeps.
 */
static int
msisdn_kept_digits(const char *digits, int n, bool clear)
{
	int			cc;
	int			keep;

	/* no country code: a national number, or not E.164 at all */
	if (digits[0] == '0')
		return 1;

	cc = e164_country_code_len(digits, n);
	keep = cc + msisdn_prefix_digits(digits_value(digits, cc));

	/*
	 * Hide at least MSISDN_MIN_HIDDEN digits of a clear number, but keep the
	 * country code whatever its length.  (An already generalized value has
	 * lost its length; it is only cut down to the rule.)
	 */
	if (clear)
		keep = Min(keep, Max(cc, n - MSISDN_MIN_HIDDEN));
	return Min(keep, n);
}

/*
 * imsi: MCC (3 digits) + MNC (2 or 3).  The MNC's length is not written in
 * the IMSI (the SIM card knows it); the MCCs below use 3-digit MNCs only, as
 * recorded by Android's telephony MCC table (its smallest MNC length).
 * Elsewhere 2 digits are kept, which for the few MCCs mixing 2- and 3-digit
 * MNCs (India's 405, Panama's 714, ...) is coarser than the network.
 */
static int
imsi_kept_digits(const char *digits, int n)
{
	if (n < 3)
		return n;
	switch (digits_value(digits, 3))
	{
		case 302:				/* Canada */
		case 310:				/* United States: 310 to 316 */
		case 311:
		case 312:
		case 313:
		case 314:
		case 315:
		case 316:
		case 334:				/* Mexico */
		case 338:				/* Jamaica */
		case 342:				/* Barbados */
		case 344:				/* Antigua and Barbuda */
		case 346:				/* Cayman Islands */
		case 348:				/* British Virgin Islands */
		case 365:				/* Anguilla */
		case 708:				/* Honduras */
		case 722:				/* Argentina */
		case 732:				/* Colombia */
			return Min(n, 6);
		default:
			return Min(n, 5);
	}
}

/* imei and imeisv: the type allocation code, 8 digits (device model) */
#define IMEI_TAC_LEN	8

/* the first keep digits of str, then "*" */
static text *
digits_star(const char *str, int keep)
{
	text	   *result = (text *) palloc(VARHDRSZ + keep + 1);

	SET_VARSIZE(result, VARHDRSZ + keep + 1);
	memcpy(VARDATA(result), str, keep);
	VARDATA(result)[keep] = '*';
	return result;
}

/*
 * The generalization of a value of type kind in the normal
 * form, clear or generalized.  A generalized value finer than the rule
 * (e.g. "336123456*", which the type accepts) is cut down to it; otherwise
 * it is returned as is.
 */
static text *
generalize(RetentionTypeKind kind, text *value, const char *str, int len,
		   RetentionValueForm form)
{
	int			ndigits = (form == RV_GENERALIZED) ? len - 1 : len;
	int			keep;
	int			dashes;
	int			i;

	switch (kind)
	{
		case RT_MSISDN:
			keep = msisdn_kept_digits(str, ndigits, form == RV_CLEAR);
			break;
		case RT_IMSI:
			keep = imsi_kept_digits(str, ndigits);
			break;
		case RT_IMEI:
			keep = Min(ndigits, IMEI_TAC_LEN);
			break;
		case RT_CELL:
			if (form == RV_GENERALIZED)
				return value;
			/* MCC-MNC-AREA-CELL: everything before the third dash */
			dashes = 0;
			for (i = 0; i < len; i++)
				if (str[i] == '-' && ++dashes == 3)
					break;
			return cstring_to_text_with_len(str, i);
		case RT_IDENT:
			/* an IP address keeps its /24 or /48; anything else goes */
			if (form == RV_GENERALIZED)
				return value;
			return retention_ip_generalize(str, len);
		default:
			elog(ERROR, "unexpected retention type kind %d", (int) kind);
			return NULL;		/* keep compiler quiet */
	}

	if (form == RV_GENERALIZED && keep >= ndigits)
		return value;
	return digits_star(str, keep);
}

/*
 * Truncate a timestamp to the hour, on the UTC epoch: the result does not
 * depend on the session's time zone (in a zone whose offset is not a whole
 * number of hours it shows as, e.g., hh:30).
 */
TimestampTz
retention_generalize_timestamp(TimestampTz ts)
{
	TimestampTz rem;

	if (TIMESTAMP_NOT_FINITE(ts))
		return ts;
	/* PostgreSQL's epoch, 2000-01-01 00:00 UTC, is on an hour */
	rem = ts % USECS_PER_HOUR;
	if (rem < 0)
		rem += USECS_PER_HOUR;
	return ts - rem;
}


/* ---------------------------------------------------------------------
 * pgcrypto
 * ---------------------------------------------------------------------
 */

static void
load_pgcrypto(void)
{
	if (pgcrypto_hmac != NULL)
		return;
	if (hmac_algorithm == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		hmac_algorithm = cstring_to_text("sha256");
		MemoryContextSwitchTo(oldcxt);
	}
	pgcrypto_random_bytes = load_external_function("$libdir/pgcrypto",
												   "pg_random_bytes", true, NULL);
	pgcrypto_hmac = load_external_function("$libdir/pgcrypto", "pg_hmac",
										   true, NULL);
}

/*
 * retention._random_bytes(n): pgcrypto's gen_random_bytes, whatever schema
 * pgcrypto is in.  Keys are made of these.
 */
Datum
retention_random_bytes(PG_FUNCTION_ARGS)
{
	load_pgcrypto();
	return DirectFunctionCall1(pgcrypto_random_bytes, PG_GETARG_DATUM(0));
}


/* ---------------------------------------------------------------------
 * The key cache
 * ---------------------------------------------------------------------
 */

/* catalog.c calls this on every invalidation; relid 0 means everything */
static void
key_cache_flush(Oid relid)
{
	if (OidIsValid(relid) && relid != key_relid)
		return;
	if (key_datum != NULL)
		explicit_bzero(VARDATA(key_datum), RETENTION_KEY_LEN);
	key_valid = false;
	key_relid = InvalidOid;
}

/* refuse to read a table that is not laid out as the script made it */
static void
key_table_check(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (desc->natts < Anum_key_retired_at ||
		TupleDescAttr(desc, Anum_key_id - 1)->atttypid != INT4OID ||
		TupleDescAttr(desc, Anum_key_key - 1)->atttypid != BYTEAOID ||
		TupleDescAttr(desc, Anum_key_retired_at - 1)->atttypid != TIMESTAMPTZOID)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s.%s\" does not have the layout retention expects",
						RETENTION_SCHEMA, KEY_TABLE),
				 errhint("Reinstall the extension.")));
}

/*
 * Read the current key (the one not retired) into the cache.  Direct heap
 * access under a fresh catalog snapshot: it needs no privilege, works in
 * parallel workers, and sees keys committed before the invalidation that
 * emptied the cache, and this transaction's own.
 */
static void
load_current_key(void)
{
	Oid			relid;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	if (!key_callback_registered)
	{
		retention_register_flush(key_cache_flush);
		key_callback_registered = true;
	}
	if (key_datum == NULL)
	{
		key_datum = (bytea *) MemoryContextAllocZero(TopMemoryContext,
													 VARHDRSZ + RETENTION_KEY_LEN);
		SET_VARSIZE(key_datum, VARHDRSZ + RETENTION_KEY_LEN);
	}

	relid = get_relname_relid(KEY_TABLE, retention_schema_oid(false));
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist",
						RETENTION_SCHEMA, KEY_TABLE),
				 errhint("Reinstall the extension.")));

	/* taking the lock processes pending invalidations first */
	rel = table_open(relid, AccessShareLock);
	key_table_check(rel);

	InvalidateCatalogSnapshot();
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;
		Datum		d;
		bytea	   *k;
		int32		id;

		(void) heap_getattr(tuple, Anum_key_retired_at, desc, &isnull);
		if (!isnull)
			continue;

		d = heap_getattr(tuple, Anum_key_id, desc, &isnull);
		if (isnull)
			continue;
		id = DatumGetInt32(d);
		d = heap_getattr(tuple, Anum_key_key, desc, &isnull);
		if (isnull)
			continue;
		k = DatumGetByteaPP(d);
		if (VARSIZE_ANY_EXHDR(k) != RETENTION_KEY_LEN || id <= 0 || id > 999999999)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("current key %d in table \"%s.%s\" is malformed",
							id, RETENTION_SCHEMA, KEY_TABLE),
					 errhint("Run SELECT retention.rotate_key() to make a new one.")));
		memcpy(VARDATA(key_datum), VARDATA_ANY(k), RETENTION_KEY_LEN);
		if ((Pointer) k != DatumGetPointer(d))
		{
			explicit_bzero(VARDATA_ANY(k), RETENTION_KEY_LEN);
			pfree(k);
		}
		key_prefix_len = snprintf(key_prefix, sizeof(key_prefix), "~k%d:", id);
		found = true;
		break;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("retention has no current pseudonymization key"),
				 errhint("A member of retention_admin can make one with SELECT retention.rotate_key().")));

	key_relid = relid;
	key_valid = true;
}

/*
 * The pseudonym of a clear value (a text datum, maybe packed):
 * ~k<key id>:<first 24 hex digits of HMAC-SHA-256(key, value)>.  Only the
 * normalized value is hashed, not its type, so that a number gives the
 * same pseudonym in every column.
 */
static text *
pseudonymize(text *value)
{
	static const char hexdigits[] = "0123456789abcdef";
	bytea	   *mac;
	text	   *result;
	char	   *out;
	int			i;

	load_pgcrypto();
	if (!key_valid)
		load_current_key();

	/* text and bytea are both varlenas: the value goes in as it is */
	mac = DatumGetByteaPP(DirectFunctionCall3(pgcrypto_hmac,
											  PointerGetDatum(value),
											  PointerGetDatum(key_datum),
											  PointerGetDatum(hmac_algorithm)));
	if (VARSIZE_ANY_EXHDR(mac) * 2 < PSEUDONYM_HEX_LEN)
		elog(ERROR, "HMAC-SHA-256 returned %d bytes", (int) VARSIZE_ANY_EXHDR(mac));

	result = (text *) palloc(VARHDRSZ + key_prefix_len + PSEUDONYM_HEX_LEN);
	SET_VARSIZE(result, VARHDRSZ + key_prefix_len + PSEUDONYM_HEX_LEN);
	out = VARDATA(result);
	memcpy(out, key_prefix, key_prefix_len);
	out += key_prefix_len;
	for (i = 0; i < PSEUDONYM_HEX_LEN / 2; i++)
	{
		unsigned char b = ((unsigned char *) VARDATA_ANY(mac))[i];

		*out++ = hexdigits[b >> 4];
		*out++ = hexdigits[b & 0x0f];
	}
	pfree(mac);
	return result;
}


/* ---------------------------------------------------------------------
 * The entry point
 * ---------------------------------------------------------------------
 */

/*
 * retention_anonymize_value: see retention.h.  value is a text datum in the
 * normal form of kind (possibly toasted or packed); the result is palloc'd
 * in the current memory context, or value itself when it is left as is, or
 * NULL.
 */
text *
retention_anonymize_value(RetentionTypeKind kind, text *value,
						  RetentionMethod method)
{
	text	   *v;
	const char *str;
	int			len;
	RetentionValueForm form;

	if ((int) method < 0 || method >= RM_NUM_METHODS)
		elog(ERROR, "unexpected anonymization method %d", (int) method);
	if (!retention_method_supported(kind, method))
		method_unsupported_error(kind, method);
	if (value == NULL || method == RM_ERASE)
		return NULL;

	v = (text *) pg_detoast_datum_packed((struct varlena *) value);
	str = VARDATA_ANY(v);
	len = VARSIZE_ANY_EXHDR(v);
	form = retention_value_form(kind, str, len);

	if (method == RM_GENERALIZE)
	{
		/* nothing of a pseudonym survives generalization */
		if (form == RV_PSEUDONYM || len == 0)
			return NULL;
		return generalize(kind, v, str, len, form);
	}

	/* hash: pseudonyms and generalized values are anonymized already */
	if (form != RV_CLEAR)
		return value;
	return pseudonymize(v);
}


/* ---------------------------------------------------------------------
 * SQL: retention.anonymize(value, method)
 * ---------------------------------------------------------------------
 */

/* the call site's cache, or NULL when called without flinfo */
static AnonymizeCallCache *
call_cache(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo == NULL)
		return NULL;
	if (fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
								   sizeof(AnonymizeCallCache));
	return (AnonymizeCallCache *) fcinfo->flinfo->fn_extra;
}

/*
 * The method argument, checked: never NULL, always known.  Parsed once per
 * call site when it is a constant, as it nearly always is.
 */
static RetentionMethod
method_argument(FunctionCallInfo fcinfo, AnonymizeCallCache *cache)
{
	char	   *name;
	int			method;

	if (cache != NULL && cache->method_known)
		return cache->method;
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("anonymization method must not be null"),
				 errhint("Valid methods are erase, generalize and hash.")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	method = method_lookup(name);
	if (method < 0)
		method_unknown_error(name);
	pfree(name);
	if (cache != NULL && get_fn_expr_arg_stable(fcinfo->flinfo, 1))
	{
		cache->method = (RetentionMethod) method;
		cache->method_known = true;
	}
	return (RetentionMethod) method;
}

/*
 * Method hash through SQL would let any role compute any subscriber's
 * pseudonym and so re-identify pseudonymized rows: superusers and members
 * of retention_admin only.  (retention's own triggers and sweeps call
 * retention_anonymize_value() directly.)  The answer is cached per call
 * site and role.
 */
static void
check_hash_allowed(AnonymizeCallCache *cache)
{
	AnonymizeCallCache local = {0};
	Oid			userid = GetUserId();

	if (cache == NULL)
		cache = &local;
	if (cache->userid != userid)
	{
		Oid			adminid = get_role_oid(RETENTION_ADMIN_ROLE, true);

		cache->hash_allowed = superuser() ||
			(OidIsValid(adminid) && has_privs_of_role(userid, adminid));
		cache->userid = userid;
	}
	if (!cache->hash_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to compute pseudonyms"),
				 errdetail("Method \"hash\" of retention.anonymize() is reserved to superusers and members of role \"%s\", since it would let any role compute any subscriber's pseudonym.",
						   RETENTION_ADMIN_ROLE)));
}

static Datum
anonymize_sql(FunctionCallInfo fcinfo, RetentionTypeKind kind)
{
	AnonymizeCallCache *cache = call_cache(fcinfo);
	RetentionMethod method = method_argument(fcinfo, cache);
	text	   *result;

	if (!retention_method_supported(kind, method))
		method_unsupported_error(kind, method);
	if (method == RM_HASH)
		check_hash_allowed(cache);
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();

	result = retention_anonymize_value(kind, PG_GETARG_TEXT_PP(0), method);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(result);
}

Datum
retention_anonymize_msisdn(PG_FUNCTION_ARGS)
{
	return anonymize_sql(fcinfo, RT_MSISDN);
}

Datum
retention_anonymize_imsi(PG_FUNCTION_ARGS)
{
	return anonymize_sql(fcinfo, RT_IMSI);
}

Datum
retention_anonymize_imei(PG_FUNCTION_ARGS)
{
	return anonymize_sql(fcinfo, RT_IMEI);
}

Datum
retention_anonymize_cell(PG_FUNCTION_ARGS)
{
	return anonymize_sql(fcinfo, RT_CELL);
}

Datum
retention_anonymize_ident(PG_FUNCTION_ARGS)
{
	return anonymize_sql(fcinfo, RT_IDENT);
}

/* timestamps: erase, or generalize to the hour; no pseudonym */
Datum
retention_anonymize_timestamptz(PG_FUNCTION_ARGS)
{
	RetentionMethod method = method_argument(fcinfo, call_cache(fcinfo));

	if (method == RM_HASH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("method \"%s\" is not supported for type %s",
						retention_method_names[method], "timestamp with time zone"),
				 errhint("Use method \"erase\" or \"generalize\" (to the hour).")));
	if (PG_ARGISNULL(0) || method == RM_ERASE)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(retention_generalize_timestamp(PG_GETARG_TIMESTAMPTZ(0)));
}
