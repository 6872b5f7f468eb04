/*-------------------------------------------------------------------------
 *
 * typmod_fuzzer.c
 *	  libFuzzer harness for the type modifier of the tagged types:
 *	  retention_purposes_in() (purpose_lookup() and the duplicate check)
 *	  and retention_purposes_out(), from src/typmod.c.
 *
 * An input is the list of modifiers as the parser would hand them over in
 * a cstring[]: the elements separated by NUL bytes (no element can hold
 * one), any bytes otherwise, so names as long and as odd as a quoted
 * string constant in "retention.msisdn('...')" can make them.  An element
 * that is exactly the byte 0x01 is an SQL NULL, and a leading byte 0x02
 * asks for a two-dimensional array: both come only from a direct call such
 * as "SELECT retention.purposes_in('{...}'::cstring[])".  Properties:
 *
 *	 T1  the result agrees with a reference written from docs/types.md: each
 *		 element one of the four purposes (case-insensitive), each at most
 *		 once; the typmod is the set of their bits, never empty.
 *	 T2  errors are clean: 22023 for an unknown purpose (with the hint
 *		 listing the valid ones) or a duplicate, the array errors for a
 *		 NULL or a 2-D array; a message quotes at most 40 bytes of a name,
 *		 cut at a character boundary, so a 1 MB name gives a short error.
 *	 T3  purposes_out() of an accepted typmod, parsed again as pg_dump's
 *		 output would be, gives the same typmod (dump and restore).
 *
 * Copyright (c) 2026, retention developers
 *
 * test/fuzz/typmod_fuzzer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "retention.h"
#include "shim.h"

#define MAX_QUOTED_LEN	40
#define MAX_ELEMENTS	4096

extern Datum retention_purposes_in(PG_FUNCTION_ARGS);
extern Datum retention_purposes_out(PG_FUNCTION_ARGS);

static const char *const purposes[RETENTION_NUM_PURPOSES] = {
	"billing", "law_enforcement", "marketing", "network_security"
};

static const uint8 *cur_data;
static size_t cur_size;

#define FAIL(what, ...) fuzz_fail(what, cur_data, cur_size, __VA_ARGS__)

/* what a call of purposes_in did */
typedef struct Outcome
{
	bool		ok;
	int32		typmod;
	FuzzError	err;
} Outcome;

/* the reference's verdict */
typedef struct Expected
{
	bool		ok;
	int32		typmod;
	int			sqlerrcode;
	char	   *message;
	const char *hint;
} Expected;

static int
ascii_tolower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* which purpose name is, ignoring ASCII case; -1 if none */
static int
ref_lookup(const char *name)
{
	int			p;

	for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
	{
		const char *a = name,
				   *b = purposes[p];

		while (*a && *b && ascii_tolower((unsigned char) *a) == *b)
			a++, b++;
		if (*a == '\0' && *b == '\0')
			return p;
	}
	return -1;
}

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

/* a name as a message quotes it */
static char *
ref_quote(const char *name)
{
	int			len = strlen(name);
	int			cut = 0;

	if (len <= MAX_QUOTED_LEN)
		return pstrdup(name);
	while (cut + utf8_char_len(name[cut]) <= MAX_QUOTED_LEN)
		cut += utf8_char_len(name[cut]);
	return psprintf("%.*s...", cut, name);
}

static void
reference(const char *const *elems, const bool *nulls, int n, int ndim,
		  Expected *x)
{
	int			i;

	memset(x, 0, sizeof(*x));
	if (ndim != 1)
	{
		x->sqlerrcode = ERRCODE_ARRAY_SUBSCRIPT_ERROR;
		x->message = "array must be one-dimensional";
		return;
	}
	for (i = 0; i < n; i++)
		if (nulls[i])
		{
			x->sqlerrcode = ERRCODE_NULL_VALUE_NOT_ALLOWED;
			x->message = "array must not contain nulls";
			return;
		}
	for (i = 0; i < n; i++)
	{
		int			p = ref_lookup(elems[i]);

		if (p < 0)
		{
			x->sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
			x->message = psprintf("unknown retention purpose \"%s\"", ref_quote(elems[i]));
			x->hint = "Valid purposes are billing, law_enforcement, marketing and network_security.";
			return;
		}
		if (x->typmod & (1 << p))
		{
			x->sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
			x->message = psprintf("purpose \"%s\" is listed more than once", purposes[p]);
			return;
		}
		x->typmod |= 1 << p;
	}
	x->ok = true;
}

static void
run_purposes_in(const char *const *elems, const bool *nulls, int n, int ndim,
				Outcome *o)
{
	LOCAL_FCINFO(fcinfo, 1);
	volatile bool returned = false;
	Datum		result = (Datum) 0;

	memset(o, 0, sizeof(*o));
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = PointerGetDatum(fuzz_cstring_array(elems, nulls, n, ndim));
	fcinfo->args[0].isnull = false;

	PG_TRY();
	{
		result = retention_purposes_in(fcinfo);
		returned = true;
	}
	PG_CATCH();
	{
	}
	PG_END_TRY();

	if (returned)
	{
		if (fuzz_take_error(&o->err))
			FAIL("T2 no error escapes", "purposes_in returned after raising");
		if (fcinfo->isnull)
			FAIL("T1 typmod", "purposes_in returned NULL");
		o->ok = true;
		o->typmod = DatumGetInt32(result);
	}
	else if (!fuzz_take_error(&o->err))
		FAIL("T2 errors raise", "longjmp without an error");
}

static char *
run_purposes_out(int32 typmod)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = Int32GetDatum(typmod);
	fcinfo->args[0].isnull = false;
	result = retention_purposes_out(fcinfo);	/* raises nothing */
	return DatumGetCString(result);
}

int			LLVMFuzzerTestOneInput(const uint8 *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8 *data, size_t size)
{
	const char **elems;
	bool	   *nulls;
	int			n = 1;
	int			ndim = 1;
	size_t		i,
				start;
	char	   *buf;
	Outcome		got;
	Expected	want;
	bool		server_valid = true;

	cur_data = data;
	cur_size = size;
	if (size > 0 && data[0] == 0x02)
	{
		ndim = 2;
		data++, size--;
	}
	for (i = 0; i < size; i++)
		n += (data[i] == '\0');
	if (n > MAX_ELEMENTS)
		return -1;
	if (ndim == 2 && n % 2 != 0)
		ndim = 1;

	/* split at NUL bytes: buf holds the elements, each NUL-terminated */
	buf = palloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	elems = palloc(n * sizeof(char *));
	nulls = palloc0(n * sizeof(bool));
	n = 0;
	for (start = 0, i = 0; i <= size; i++)
	{
		if (i < size && buf[i] != '\0')
			continue;
		elems[n] = buf + start;
		nulls[n] = (i - start == 1 && buf[start] == 0x01);
		server_valid &= fuzz_server_valid(elems[n], i - start);
		n++;
		start = i + 1;
	}

	run_purposes_in(elems, nulls, n, ndim, &got);
	reference(elems, nulls, n, ndim, &want);

	/* T1 */
	if (got.ok != want.ok)
		FAIL("T1 accepts what the README accepts", "purposes_in %s, the reference %s%s",
			 got.ok ? "accepts" : "refuses", want.ok ? "accepts" : "refuses: ",
			 want.ok ? "" : want.message);
	if (got.ok && got.typmod != want.typmod)
		FAIL("T1 typmod", "typmod %d, reference %d", got.typmod, want.typmod);
	if (got.ok && (got.typmod <= 0 || got.typmod > PURPOSE_SET_ALL))
		FAIL("T1 typmod", "typmod %d is not a non-empty purpose set", got.typmod);

	/* T2: any bytes are quoted as they are; compare messages for valid input */
	if (!got.ok)
	{
		if (got.err.sqlerrcode != want.sqlerrcode)
			FAIL("T2 SQLSTATE", "got %s (%s), want %s", fuzz_sqlstate(got.err.sqlerrcode),
				 got.err.message, fuzz_sqlstate(want.sqlerrcode));
		if (server_valid && strcmp(got.err.message, want.message) != 0)
			FAIL("T2 message", "got message: %.200s%s\n=== wanted:      %s",
				 got.err.message, strlen(got.err.message) > 200 ? "..." : "", want.message);
		if (strlen(got.err.message) > 100)
			FAIL("T2 message is short", "message of %zu bytes: %.200s...",
				 strlen(got.err.message), got.err.message);
		if ((got.err.hint == NULL) != (want.hint == NULL) ||
			(want.hint && strcmp(got.err.hint, want.hint) != 0))
			FAIL("T2 hint", "hint: %s", got.err.hint ? got.err.hint : "(none)");
	}

	/* T3: what purposes_out prints parses back to the same typmod */
	if (got.ok)
	{
		char	   *printed = run_purposes_out(got.typmod);
		int			plen = strlen(printed);
		const char *again[RETENTION_NUM_PURPOSES + 1];
		bool		again_nulls[RETENTION_NUM_PURPOSES + 1] = {false};
		int			m = 0;
		char	   *p,
				   *tok;
		Outcome		re;

		if (plen < 2 || printed[0] != '(' || printed[plen - 1] != ')')
			FAIL("T3 output", "typmod %d prints as \"%s\"", got.typmod, printed);
		printed[plen - 1] = '\0';
		for (p = printed + 1; (tok = strsep(&p, ",")) != NULL;)
		{
			if (m == RETENTION_NUM_PURPOSES)
				FAIL("T3 output", "typmod %d prints too many purposes", got.typmod);
			again[m++] = tok;
		}
		run_purposes_in(again, again_nulls, m, 1, &re);
		if (!re.ok || re.typmod != got.typmod)
			FAIL("T3 dump and restore", "typmod %d prints as \"%s)\", which parses to %s %d",
				 got.typmod, printed, re.ok ? "typmod" : "an error", re.typmod);
	}

	fuzz_reset_memory();
	return 0;
}
