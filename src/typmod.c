/*-------------------------------------------------------------------------
 *
 * typmod.c
 *	  Purpose sets: the type modifier of every purpose-tagged type.
 *
 * "retention.msisdn(billing, law_enforcement)" stores the set of legal
 * purposes in pg_attribute.atttypmod as a bitmask (see RetentionPurpose).
 * The encoding depends on nothing but the purpose names, so pg_dump's
 * format_type() output restores to the same typmod before any data is
 * loaded.  A column without modifier (typmod -1) is kept for no purpose.
 *
 * This file parses and prints purpose sets; what a purpose allows is
 * policy's business, not this file's.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/typmod.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "retention.h"

PG_FUNCTION_INFO_V1(retention_purposes_in);
PG_FUNCTION_INFO_V1(retention_purposes_out);

/* canonical order: the order of the bits, which is alphabetical */
const char *const retention_purpose_names[RETENTION_NUM_PURPOSES] = {
	"billing", "law_enforcement", "marketing", "network_security",
	"connection", "national_security", "location", "identity", "account", "payment"
};

/* the purposes in alphabetical order: how sets of them are shown */
const int	retention_purpose_order[RETENTION_NUM_PURPOSES] = {
	RETENTION_ACCOUNT, RETENTION_BILLING, RETENTION_CONNECTION, RETENTION_IDENTITY,
	RETENTION_LAW_ENFORCEMENT, RETENTION_LOCATION, RETENTION_MARKETING,
	RETENTION_NATIONAL_SECURITY, RETENTION_NETWORK_SECURITY, RETENTION_PAYMENT
};

/* the purpose called name (case-insensitive), or -1 */
int
purpose_lookup(const char *name)
{
	int			i;

	for (i = 0; i < RETENTION_NUM_PURPOSES; i++)
		if (pg_strcasecmp(name, retention_purpose_names[i]) == 0)
			return i;
	return -1;
}

/*
 * An unknown purpose: the message quotes at most MAX_QUOTED_NAME bytes of
 * the name, as types.c does for values.  A purpose can come from a string
 * constant in a type modifier, "retention.msisdn('...')", of any length.
 */
#define MAX_QUOTED_NAME 40

void
purpose_unknown_error(const char *name)
{
	int			len = strlen(name);
	const char *quoted = name;

	if (len > MAX_QUOTED_NAME)
		quoted = psprintf("%s...",
						  pnstrdup(name, pg_mbcliplen(name, len, MAX_QUOTED_NAME)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown retention purpose \"%s\"", quoted),
			 errhint("Valid purposes are account, billing, connection, identity, law_enforcement, location, marketing, national_security, network_security and payment.")));
}

/* the purposes of a column of typmod typmod (none for -1) */
PurposeSet
purpose_set_from_typmod(int32 typmod)
{
	if (typmod < 0)
		return 0;
	return (PurposeSet) (typmod & PURPOSE_SET_ALL);
}

/* "billing,law_enforcement", palloc'd; "" for the empty set */
char *
purpose_set_to_string(PurposeSet set)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < RETENTION_NUM_PURPOSES; i++)
	{
		int			p = retention_purpose_order[i];

		if ((set & PURPOSE_BIT(p)) == 0)
			continue;
		if (buf.len > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, retention_purpose_names[p]);
	}
	return buf.data;
}

/*
 * retention_purposes_in: typmod_in of every tagged type.  Takes the list of
 * purposes as written in the column's type, in any order.
 */
Datum
retention_purposes_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	int			n;
	int			i;
	PurposeSet	set = 0;

	if (ARR_ELEMTYPE(ta) != CSTRINGOID)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_ELEMENT_ERROR),
				 errmsg("array must be of type cstring[]")));
	if (ARR_NDIM(ta) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("array must be one-dimensional")));
	if (array_contains_nulls(ta))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("array must not contain nulls")));

	deconstruct_array(ta, CSTRINGOID, -2, false, TYPALIGN_CHAR,
					  &elems, NULL, &n);

	for (i = 0; i < n; i++)
	{
		const char *name = DatumGetCString(elems[i]);
		int			p = purpose_lookup(name);

		if (p < 0)
			purpose_unknown_error(name);	/* does not return */
		else if (set & PURPOSE_BIT(p))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("purpose \"%s\" is listed more than once",
							retention_purpose_names[p])));
		else
			set |= PURPOSE_BIT(p);
	}

	PG_RETURN_INT32((int32) set);
}

/* retention_purposes_out: typmod_out, "(billing,law_enforcement)" */
Datum
retention_purposes_out(PG_FUNCTION_ARGS)
{
	int32		typmod = PG_GETARG_INT32(0);

	if (typmod < 0)
		PG_RETURN_CSTRING(pstrdup(""));
	PG_RETURN_CSTRING(psprintf("(%s)",
							   purpose_set_to_string(purpose_set_from_typmod(typmod))));
}
