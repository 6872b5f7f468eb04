/*-------------------------------------------------------------------------
 *
 * types_fuzzer.c
 *	  libFuzzer harness for the text input of one purpose-tagged type:
 *	  retention_normalize(), retention_value_form() and the SQL entry
 *	  points of src/types.c (input, receive, casts from text and char).
 *
 * Built once per type, with -DFUZZ_KIND=RT_MSISDN (RT_IMSI, RT_IMEI,
 * RT_CELL, RT_IDENT), by test/fuzz/run.  Each input is a candidate value,
 * any bytes.  Beyond "no crash, no sanitizer report", every input must
 * satisfy these properties; a violation aborts with the input and what
 * went wrong, which libFuzzer saves as a reproducer:
 *
 *	 P1  normalize either appends a value and returns true, or raises; it
 *		 never returns false without a soft-error context (a caller would
 *		 store NULL, or crash on it), and an error leaves nothing that a
 *		 caller could store: no entry point returns a value then.
 *	 P2  acceptance and normal form agree with a reference written from
 *		 the table of docs/types.md (reference_normalize below), byte for byte.
 *	 P3  the normal form is accepted again, unchanged (idempotence), and
 *		 appending to a non-empty buffer appends the same bytes.
 *	 P4  a digit type's normal form is never longer than the input;
 *		 ident's is the input itself.
 *	 P5  retention_value_form() of the normal form is the form the value
 *		 was parsed as (clear, generalized or pseudonym).
 *	 P6  for input the server can pass (valid UTF-8, no NUL): an error is
 *		 22P02, its message is exactly "invalid input syntax for type T:
 *		 "V"" with V the value cut at a character boundary after 40 bytes,
 *		 its detail a short sentence in valid UTF-8.
 *	 P7  the input function, binary receive, and the casts from text and
 *		 char(n) (trailing blanks dropped) all agree with normalize.
 *
 * Copyright (c) 2026, retention developers
 *
 * test/fuzz/types_fuzzer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "retention.h"
#include "shim.h"

#ifndef FUZZ_KIND
#error "compile with -DFUZZ_KIND=RT_MSISDN, RT_IMSI, RT_IMEI, RT_CELL or RT_IDENT"
#endif

#define MAX_VALUE_LEN	64		/* docs/types.md: no clear or anonymized value is longer */
#define MAX_QUOTED_LEN	40		/* docs/types.md: the value is shortened past 40 bytes */
#define MAX_DETAIL_LEN	200

/* the SQL-callable functions of src/types.c */
#define DECLARE_ENTRY_POINTS(name) \
	extern Datum retention_##name##_in(PG_FUNCTION_ARGS); \
	extern Datum retention_##name##_recv(PG_FUNCTION_ARGS); \
	extern Datum retention_##name##_from_text(PG_FUNCTION_ARGS); \
	extern Datum retention_##name##_from_bpchar(PG_FUNCTION_ARGS)
DECLARE_ENTRY_POINTS(msisdn);
DECLARE_ENTRY_POINTS(imsi);
DECLARE_ENTRY_POINTS(imei);
DECLARE_ENTRY_POINTS(cell);
DECLARE_ENTRY_POINTS(ident);

typedef struct EntryPoints
{
	PGFunction	in,
				recv,
				from_text,
				from_bpchar;
} EntryPoints;

#define ENTRY_POINTS(name) \
	{retention_##name##_in, retention_##name##_recv, \
	 retention_##name##_from_text, retention_##name##_from_bpchar}
static const EntryPoints entry_points[RT_NUM_KINDS] = {
	ENTRY_POINTS(msisdn), ENTRY_POINTS(imsi), ENTRY_POINTS(imei),
	ENTRY_POINTS(cell), ENTRY_POINTS(ident)
};

static const char *const form_names[] = {"clear", "generalized", "pseudonym"};

/* what one call did */
typedef struct Outcome
{
	bool		ok;
	const char *value;			/* the normal form, if ok */
	int			len;
	FuzzError	err;			/* the error, if not */
} Outcome;

/* the input being tested, for fuzz_fail() */
static const uint8 *cur_data;
static size_t cur_size;

#define FAIL(what, ...) fuzz_fail(what, cur_data, cur_size, __VA_ARGS__)

/* ---------------------------------------------------------------------
 * The reference: the table of accepted values of docs/types.md, written out
 * plainly, sharing no code with src/types.c.
 * ---------------------------------------------------------------------
 */
static bool
all_digits(const char *s, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char) s[i]))
			return false;
	return true;
}

/* ~k<1 to 9 digits, no leading zero>:<24 lowercase hex digits> */
static bool
ref_is_pseudonym(const char *s, int n)
{
	int			i = 2,
				keydigits = 0,
				hex = 0;

	if (n < 2 || s[0] != '~' || s[1] != 'k')
		return false;
	while (i < n && isdigit((unsigned char) s[i]))
		i++, keydigits++;
	if (keydigits < 1 || keydigits > 9 || s[2] == '0' || i >= n || s[i] != ':')
		return false;
	for (i++; i < n; i++, hex++)
		if (!(isdigit((unsigned char) s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return hex == 24;
}

/* the Luhn check over all 15 digits: the weighted sum is a multiple of 10 */
static bool
ref_luhn_ok(const char *s)
{
	int			sum = 0;
	int			i;

	for (i = 0; i < 15; i++)
	{
		int			d = s[14 - i] - '0';

		if (i % 2 == 1)
			d = d * 2 > 9 ? d * 2 - 9 : d * 2;
		sum += d;
	}
	return sum % 10 == 0;
}

/*
 * A decimal field of a cell identity, value at most max: appends it
 * without leading zeros.
 */
static bool
ref_cell_number(const char *s, int n, const char *max, StringInfo out)
{
	int			maxlen = strlen(max);

	while (n > 1 && s[0] == '0')
		s++, n--;
	if (n > maxlen || (n == maxlen && memcmp(s, max, n) > 0))
		return false;
	appendBinaryStringInfo(out, s, n);
	return true;
}

static bool
ref_cell(const char *s, int n, StringInfo out, RetentionValueForm *form)
{
	const char *part[5];
	int			plen[5];
	int			nparts = 0;
	int			start = 0;
	int			i;

	for (i = 0; i <= n; i++)
	{
		if (i < n && s[i] != '-')
			continue;
		if (nparts == 5)
			return false;
		part[nparts] = s + start;
		plen[nparts] = i - start;
		nparts++;
		start = i + 1;
	}
	if (nparts != 3 && nparts != 4)
		return false;
	for (i = 0; i < nparts; i++)
		if (plen[i] == 0 || !all_digits(part[i], plen[i]))
			return false;
	if (plen[0] != 3 || plen[1] < 2 || plen[1] > 3)
		return false;

	appendBinaryStringInfo(out, part[0], 3);
	appendStringInfoChar(out, '-');
	appendBinaryStringInfo(out, part[1], plen[1]);
	appendStringInfoChar(out, '-');
	if (!ref_cell_number(part[2], plen[2], "16777215", out))
		return false;
	if (nparts == 4)
	{
		appendStringInfoChar(out, '-');
		if (!ref_cell_number(part[3], plen[3], "68719476735", out))
			return false;
	}
	*form = nparts == 3 ? RV_GENERALIZED : RV_CLEAR;
	return true;
}

/* is s[0..n) a value of kind? If so its normal form is appended to out */
static bool
reference_normalize(RetentionTypeKind kind, const char *s, int n,
					StringInfo out, RetentionValueForm *form)
{
	int			gmin,
				gmax,
				cmin,
				cmax;

	if (kind == RT_IDENT)
	{
		appendBinaryStringInfo(out, s, n);
		*form = ref_is_pseudonym(s, n) ? RV_PSEUDONYM : RV_CLEAR;
		return true;
	}
	if (n == 0 || n > MAX_VALUE_LEN)
		return false;
	if (ref_is_pseudonym(s, n))
	{
		appendBinaryStringInfo(out, s, n);
		*form = RV_PSEUDONYM;
		return true;
	}
	if (kind == RT_CELL)
		return ref_cell(s, n, out, form);

	switch (kind)
	{
		case RT_MSISDN:
			gmin = 1, gmax = 9, cmin = 6, cmax = 15;
			break;
		case RT_IMSI:
			gmin = 5, gmax = 6, cmin = 14, cmax = 15;
			break;
		default:
			gmin = 8, gmax = 8, cmin = 15, cmax = 16;
			break;
	}
	/* generalized: digits, then "*" */
	if (s[n - 1] == '*')
	{
		if (n - 1 < gmin || n - 1 > gmax || !all_digits(s, n - 1))
			return false;
		appendBinaryStringInfo(out, s, n);
		*form = RV_GENERALIZED;
		return true;
	}
	/* clear: an MSISDN may start with "+", which is not kept */
	if (kind == RT_MSISDN && s[0] == '+')
		s++, n--;
	if (n < cmin || n > cmax || !all_digits(s, n))
		return false;
	if (kind == RT_IMEI && n == 15 && !ref_luhn_ok(s))
		return false;
	appendBinaryStringInfo(out, s, n);
	*form = RV_CLEAR;
	return true;
}

/* ---------------------------------------------------------------------
 * Calling the code under test
 * ---------------------------------------------------------------------
 */

/* retention_normalize(kind, str, len) appending to out; checks P1 */
static void
run_normalize(RetentionTypeKind kind, const char *str, int len,
			  StringInfo out, Outcome *o)
{
	volatile bool returned = false;
	bool		result = false;
	int			before = out->len;

	memset(o, 0, sizeof(*o));
	PG_TRY();
	{
		result = retention_normalize(kind, str, len, out, NULL);
		returned = true;
	}
	PG_CATCH();
	{
	}
	PG_END_TRY();

	if (returned)
	{
		if (fuzz_take_error(&o->err))
			FAIL("P1 no error escapes", "normalize returned after raising");
		if (!result)
			FAIL("P1 errors raise", "normalize returned false without an error context");
		if (out->len < before || out->data[out->len] != '\0')
			FAIL("P1 output well-formed", "buffer length %d (was %d), not NUL-terminated",
				 out->len, before);
		o->ok = true;
		o->value = out->data + before;
		o->len = out->len - before;
	}
	else if (!fuzz_take_error(&o->err))
		FAIL("P1 errors raise", "longjmp without an error");
}

/* an SQL entry point of the type, called with arg; checks P1 */
static void
run_entry(PGFunction fn, Datum arg, const char *name, Outcome *o)
{
	LOCAL_FCINFO(fcinfo, 3);
	volatile bool returned = false;
	Datum		result = (Datum) 0;

	memset(o, 0, sizeof(*o));
	InitFunctionCallInfoData(*fcinfo, NULL, 3, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = arg;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = ObjectIdGetDatum(InvalidOid);
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = Int32GetDatum(-1);
	fcinfo->args[2].isnull = false;

	PG_TRY();
	{
		result = fn(fcinfo);
		returned = true;
	}
	PG_CATCH();
	{
	}
	PG_END_TRY();

	if (returned)
	{
		text	   *t;

		if (fuzz_take_error(&o->err))
			FAIL("P1 no error escapes", "%s returned after raising", name);
		if (fcinfo->isnull || DatumGetPointer(result) == NULL)
			FAIL("P1 errors raise", "%s returned NULL for a non-NULL input", name);
		t = (text *) DatumGetPointer(result);
		o->ok = true;
		o->value = VARDATA_ANY(t);
		o->len = VARSIZE_ANY_EXHDR(t);
	}
	else if (!fuzz_take_error(&o->err))
		FAIL("P1 errors raise", "%s: longjmp without an error", name);
}

static bool
same_value(const Outcome *a, const char *s, int len)
{
	return a->ok && a->len == len && memcmp(a->value, s, len) == 0;
}

static bool
same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* P7: an entry point did what normalize did */
static void
check_agrees(const char *name, const Outcome *got, const Outcome *want)
{
	if (got->ok != want->ok)
		FAIL("P7 entry points agree", "%s %s, normalize %s", name,
			 got->ok ? "accepts" : "refuses", want->ok ? "accepts" : "refuses");
	if (got->ok && !same_value(got, want->value, want->len))
		FAIL("P7 entry points agree", "%s gives \"%.*s\", normalize \"%.*s\"", name,
			 got->len, got->value, want->len, want->value);
	if (!got->ok && (got->err.sqlerrcode != want->err.sqlerrcode ||
					 !same_text(got->err.message, want->err.message) ||
					 !same_text(got->err.detail, want->err.detail)))
		FAIL("P7 entry points agree", "%s: %s %s / %s; normalize: %s %s / %s", name,
			 fuzz_sqlstate(got->err.sqlerrcode), got->err.message, got->err.detail,
			 fuzz_sqlstate(want->err.sqlerrcode), want->err.message, want->err.detail);
}

/* length of the UTF-8 character starting with byte c */
static int
utf8_char_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		return 2;
	if ((c & 0xf0) == 0xe0)
		return 3;
	return 4;
}

/* P6, for input the server can pass */
static void
check_error(RetentionTypeKind kind, const char *str, int len, const FuzzError *e)
{
	StringInfoData want;
	int			cut = 0;
	size_t		dlen;

	if (e->sqlerrcode != ERRCODE_INVALID_TEXT_REPRESENTATION)
		FAIL("P6 SQLSTATE 22P02", "got %s: %s", fuzz_sqlstate(e->sqlerrcode),
			 e->message ? e->message : "(no message)");

	initStringInfo(&want);
	appendStringInfo(&want, "invalid input syntax for type %s: \"",
					 retention_type_names[kind]);
	if (len <= MAX_QUOTED_LEN)
		appendBinaryStringInfo(&want, str, len);
	else
	{
		while (cut + utf8_char_len(str[cut]) <= MAX_QUOTED_LEN)
			cut += utf8_char_len(str[cut]);
		appendBinaryStringInfo(&want, str, cut);
		appendStringInfoString(&want, "...");
	}
	appendStringInfoChar(&want, '"');
	if (!same_text(e->message, want.data))
		FAIL("P6 message names the type and the value",
			 "got message: %s\n=== wanted:      %s", e->message, want.data);

	if (e->detail == NULL)
		FAIL("P6 detail says why", "no detail for: %s", e->message);
	dlen = strlen(e->detail);
	if (dlen == 0 || dlen > MAX_DETAIL_LEN || e->detail[dlen - 1] != '.' ||
		!(e->detail[0] >= 'A' && e->detail[0] <= 'Z'))
		FAIL("P6 detail is a short sentence", "detail: %s", e->detail);
	if (!fuzz_server_valid(e->detail, dlen))
		FAIL("P6 detail is valid UTF-8", "detail: %s", e->detail);
	if (e->hint != NULL)
		FAIL("P6 no hint", "hint: %s", e->hint);
}

/* ---------------------------------------------------------------------
 * The harness
 * ---------------------------------------------------------------------
 */
int			LLVMFuzzerTestOneInput(const uint8 *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8 *data, size_t size)
{
	const RetentionTypeKind kind = FUZZ_KIND;
	const EntryPoints *ep = &entry_points[kind];
	const char *str = (const char *) data;
	int			len;
	StringInfoData out,
				ref,
				again,
				prefixed;
	Outcome		got,
				re,
				pre,
				via;
	RetentionValueForm ref_form = RV_CLEAR,
				form;
	bool		ref_ok;
	bool		server_valid;

	/* a text value is at most 1 GB; stay far below */
	if (size > 16 * 1024 * 1024)
		return -1;
	len = (int) size;
	cur_data = data;
	cur_size = size;

	/* P1: normalize itself, on any bytes */
	initStringInfo(&out);
	run_normalize(kind, str, len, &out, &got);

	/* P2: against the reference */
	initStringInfo(&ref);
	ref_ok = reference_normalize(kind, str, len, &ref, &ref_form);
	if (got.ok != ref_ok)
		FAIL("P2 accepts what the README accepts", "%s %s it%s%s%s%s%s%s",
			 retention_type_names[kind], got.ok ? "accepts" : "refuses",
			 ref_ok ? ", the reference accepts it as " : "; the reference refuses it",
			 ref_ok ? ref.data : "",
			 got.ok ? "" : "\n=== error:  ", got.ok ? "" : got.err.message,
			 got.ok ? "" : "\n=== detail: ",
			 got.ok || !got.err.detail ? "" : got.err.detail);
	if (got.ok && !same_value(&got, ref.data, ref.len))
		FAIL("P2 normal form", "normal form \"%.*s\", reference \"%s\"",
			 got.len, got.value, ref.data);

	if (got.ok)
	{
		/* P3: idempotent, and appends the same bytes to a non-empty buffer */
		initStringInfo(&again);
		run_normalize(kind, got.value, got.len, &again, &re);
		if (!same_value(&re, got.value, got.len))
			FAIL("P3 idempotent", "\"%.*s\" normalizes to %s%.*s%s",
				 got.len, got.value, re.ok ? "\"" : "an error: ",
				 re.ok ? re.len : (int) strlen(re.err.message),
				 re.ok ? re.value : re.err.message, re.ok ? "\"" : "");
		initStringInfo(&prefixed);
		appendStringInfoString(&prefixed, "208-01-");
		run_normalize(kind, str, len, &prefixed, &pre);
		if (!same_value(&pre, got.value, got.len))
			FAIL("P3 appends", "after a prefix, normalize %s",
				 pre.ok ? "appends other bytes" : "fails");

		/* P4: lengths */
		if (kind == RT_IDENT ? !same_value(&got, str, len) : got.len > len)
			FAIL("P4 length", "input %d bytes, normal form %d bytes", len, got.len);

		/* P5: the form it was parsed as */
		form = retention_value_form(kind, got.value, got.len);
		if (form != ref_form)
			FAIL("P5 value form", "value_form says %s, the value was parsed as %s",
				 form_names[form], form_names[ref_form]);
	}

	server_valid = fuzz_server_valid(str, len);
	if (server_valid)
	{
		char	   *cstr = pnstrdup(str, len);
		StringInfoData msg;
		int			stripped = len;
		Outcome		want_bpchar;

		/* P6 */
		if (!got.ok)
			check_error(kind, str, len, &got.err);

		/* P7: the SQL entry points */
		run_entry(ep->in, CStringGetDatum(cstr), "input function", &via);
		check_agrees("input function", &via, &got);

		initStringInfo(&msg);
		appendBinaryStringInfo(&msg, str, len);
		run_entry(ep->recv, PointerGetDatum(&msg), "receive function", &via);
		check_agrees("receive function", &via, &got);

		run_entry(ep->from_text, PointerGetDatum(fuzz_text(str, len, len % 2 == 0)),
				  "cast from text", &via);
		check_agrees("cast from text", &via, &got);

		while (stripped > 0 && str[stripped - 1] == ' ')
			stripped--;
		if (stripped == len)
			want_bpchar = got;
		else
		{
			StringInfoData b;

			initStringInfo(&b);
			run_normalize(kind, str, stripped, &b, &want_bpchar);
		}
		run_entry(ep->from_bpchar, PointerGetDatum(fuzz_text(str, len, len % 2 == 1)),
				  "cast from char(n)", &via);
		check_agrees("cast from char(n)", &via, &want_bpchar);
	}

	fuzz_reset_memory();
	return 0;
}
