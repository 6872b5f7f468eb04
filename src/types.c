/*-------------------------------------------------------------------------
 *
 * types.c
 *	  The purpose-tagged identifier types: msisdn, imsi, imei, cell and
 *	  ident.  Validation, normalization, and the I/O functions.
 *
 * Each type is stored exactly like text, so that a binary-coercible cast
 * to text gives billing queries text's operators, indexes and speed.  What
 * a type adds is a gate: its input functions (text input, binary receive
 * and the casts from text, varchar and char) accept only valid values,
 * normalized, plus the anonymized forms that anonymize.c produces:
 *
 *	 type	  clear value					generalized		pseudonym
 *	 msisdn   [+]6-15 digits -> digits		1-9 digits "*"	~k<id>:<24 hex>
 *			  (<id>: the key's number, 1-9 digits, no leading zero)
 *	 imsi	  14-15 digits					5-6 digits "*"	idem
 *	 imei	  15 digits (Luhn) or 16		8 digits "*"	idem
 *	 cell	  MCC-MNC-AREA-CELL				MCC-MNC-AREA	idem
 *	 ident	  anything						(none)			idem
 *
 * Output and binary send are text's own (textout, textsend).  Purposes,
 * the type modifier, are typmod.c's business.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/types.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/inet.h"

#include "retention.h"

/* longest clear or anonymized value of a validated type, in bytes */
#define MAX_VALUE_LEN	64
/* how much of a rejected value an error message quotes */
#define MAX_QUOTED_LEN	40


/*
 * Report invalid input for type kind: message names the type and the value
 * (shortened if long), detail says why.  Returns false for the soft-error
 * case.
 */
#define invalid_input(escontext, kind, str, len, ...) \
	ereturn(escontext, false, \
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION), \
			 errmsg("invalid input syntax for type %s: \"%s\"", \
					retention_type_names[kind], quoted_value(str, len)), \
			 errdetail(__VA_ARGS__)))

/* the value as an error message shows it: at most MAX_QUOTED_LEN bytes */
static char *
quoted_value(const char *str, int len)
{
	int			cut;

	if (len <= MAX_QUOTED_LEN)
		return pnstrdup(str, len);
	cut = pg_mbcliplen(str, len, MAX_QUOTED_LEN);
	return psprintf("%s...", pnstrdup(str, cut));
}

/* the character at str[pos], whole even if multibyte, for messages */
static char *
char_at(const char *str, int len, int pos)
{
	int			l = pg_mblen(str + pos);

	return pnstrdup(str + pos, Min(l, len - pos));
}

#define BYTES_0xF0	UINT64CONST(0xF0F0F0F0F0F0F0F0)
#define BYTES_0x30	UINT64CONST(0x3030303030303030)
#define BYTES_0x06	UINT64CONST(0x0606060606060606)

/*
 * Length of the run of ASCII digits at the start of str.  It runs for every
 * value COPY reads, so it tests eight bytes at a time: all are digits when
 * each byte's high nibble is 3 and adding 6 to it leaves it 3 (no byte can
 * carry into the next once every high nibble is 3).
 */
static inline int
digit_run(const char *str, int len)
{
	int			i = 0;

	while (i + 8 <= len)
	{
		uint64		x;

		memcpy(&x, str + i, 8);
		if ((x & BYTES_0xF0) != BYTES_0x30 ||
			((x + BYTES_0x06) & BYTES_0xF0) != BYTES_0x30)
			break;
		i += 8;
	}
	while (i < len && (unsigned char) (str[i] - '0') <= 9)
		i++;
	return i;
}

/*
 * Append to a normal form being built.  make_value() sizes the buffer for
 * the whole value (a normal form is never longer than its input), so these
 * do not call out, as appendBinaryStringInfo() always does: they run for
 * every value COPY reads.
 */
static inline void
append_bytes(StringInfo out, const char *s, int n)
{
	if (out->len + n >= out->maxlen)
		enlargeStringInfo(out, n);
	memcpy(out->data + out->len, s, n);
	out->len += n;
	out->data[out->len] = '\0';
}

static inline void
append_char(StringInfo out, char c)
{
	append_bytes(out, &c, 1);
}

/* is str[0..len) a pseudonym, ~k<key id>:<24 lowercase hex digits>? */
static bool
is_pseudonym(const char *str, int len)
{
	int			d,
				i;

	if (len < 2 || str[0] != '~' || str[1] != 'k')
		return false;
	d = digit_run(str + 2, len - 2);
	/* one spelling per key: no leading zero */
	if (d < 1 || d > 9 || str[2] == '0' || 2 + d >= len || str[2 + d] != ':')
		return false;
	i = 3 + d;
	if (len - i != PSEUDONYM_HEX_LEN)
		return false;
	for (; i < len; i++)
		if (!((str[i] >= '0' && str[i] <= '9') || (str[i] >= 'a' && str[i] <= 'f')))
			return false;
	return true;
}

/* Luhn check digit for the digits str[0..len) */
static int
luhn_check_digit(const char *str, int len)
{
	/* a digit doubled, its two digits summed */
	static const uint8 doubled[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};
	int			sum = 0;
	int			i;

	/* from the right, every other digit is doubled, starting with the last */
	for (i = len - 1; i >= 0; i -= 2)
		sum += doubled[str[i] - '0'];
	for (i = len - 2; i >= 0; i -= 2)
		sum += str[i] - '0';
	return (10 - sum % 10) % 10;
}

/*
 * Digits-only types (msisdn, imsi, imei): a run of digits of a length in
 * [min, max], or its generalized form, a shorter run followed by "*".
 */
static bool
normalize_digits(RetentionTypeKind kind, const char *str, int len,
				 StringInfo out, Node *escontext)
{
	const char *p = str;
	int			n = len;
	int			d;

	if (kind == RT_MSISDN && n > 0 && p[0] == '+')
	{
		p++;
		n--;
	}
	d = digit_run(p, n);

	/* generalized form */
	if (d < n && p == str && d == n - 1 && p[d] == '*')
	{
		int			gmin,
					gmax;

		switch (kind)
		{
			case RT_MSISDN:
				gmin = 1;
				gmax = 9;
				break;
			case RT_IMSI:
				gmin = 5;
				gmax = 6;
				break;
			default:
				gmin = gmax = 8;
				break;
		}
		if (d < gmin || d > gmax)
		{
			if (gmin == gmax)
				invalid_input(escontext, kind, str, len,
							  "A generalized %s keeps exactly %d digits, not %d.",
							  retention_type_names[kind], gmin, d);
			invalid_input(escontext, kind, str, len,
						  "A generalized %s keeps %d to %d digits, not %d.",
						  retention_type_names[kind], gmin, gmax, d);
		}
		append_bytes(out, str, len);
		return true;
	}

	if (d < n)
		invalid_input(escontext, kind, str, len,
					  "Unexpected character \"%s\" at position %d.",
					  char_at(str, len, (int) (p - str) + d),
					  (int) (p - str) + d + 1);

	switch (kind)
	{
		case RT_MSISDN:
			if (d < 6 || d > 15)
				invalid_input(escontext, kind, str, len,
							  "An MSISDN has 6 to 15 digits, optionally preceded by \"+\"; this one has %d.", d);
			break;
		case RT_IMSI:
			if (d < 14 || d > 15)
				invalid_input(escontext, kind, str, len,
							  "An IMSI has 14 or 15 digits; this one has %d.", d);
			break;
		case RT_IMEI:
			if (d == 15)
			{
				int			want = luhn_check_digit(p, 14);

				if (p[14] - '0' != want)
					invalid_input(escontext, kind, str, len,
								  "Check digit is %d, expected %d.", p[14] - '0', want);
			}
			else if (d != 16)
				invalid_input(escontext, kind, str, len,
							  "An IMEI has 15 digits, or 16 for an IMEISV; this one has %d.", d);
			break;
		default:
			Assert(false);
	}
	append_bytes(out, p, n);
	return true;
}

/*
 * Cell global identity: MCC-MNC-AREA-CELL, one syntax for every radio:
 *	 MCC	3 digits
 *	 MNC	2 or 3 digits (leading zeros count: 01 and 001 differ)
 *	 AREA	LAC (2G/3G) or TAC (4G, 5G), decimal, 0 to 16777215
 *	 CELL	CI (2G, 16 bits), UTRAN CI (28), E-UTRAN ECI (28) or NR NCI
 *			(36 bits), decimal, 0 to 68719476735
 * AREA and CELL are normalized to decimal without leading zeros.  The
 * generalized form keeps MCC-MNC-AREA.
 */
static bool
normalize_cell(const char *str, int len, StringInfo out, Node *escontext)
{
	const char *field[4];
	int			flen[4];
	int			nfields = 0;
	int			start = 0;
	int			i;
	static const char *const fname[4] = {"MCC", "MNC", "area code", "cell identity"};
	static const uint64 fmax[4] = {999, 999, UINT64CONST(16777215), UINT64CONST(68719476735)};

	/* split on dashes (memchr: this runs for every value COPY reads) */
	for (;;)
	{
		const char *dash = memchr(str + start, '-', len - start);
		int			end = dash ? (int) (dash - str) : len;

		if (nfields == 4)
			invalid_input(escontext, RT_CELL, str, len,
						  "A cell identity is MCC-MNC-AREA-CELL, such as 208-01-1234-56789.");
		field[nfields] = str + start;
		flen[nfields] = end - start;
		nfields++;
		if (dash == NULL)
			break;
		start = end + 1;
	}
	if (nfields < 3)
		invalid_input(escontext, RT_CELL, str, len,
					  "A cell identity is MCC-MNC-AREA-CELL, such as 208-01-1234-56789.");

	for (i = 0; i < nfields; i++)
	{
		int			d = digit_run(field[i], flen[i]);
		uint64		v = 0;
		int			j;

		if (flen[i] == 0)
			invalid_input(escontext, RT_CELL, str, len,
						  "The %s is empty.", fname[i]);
		if (d < flen[i])
			invalid_input(escontext, RT_CELL, str, len,
						  "Unexpected character \"%s\" at position %d.",
						  char_at(str, len, (int) (field[i] - str) + d),
						  (int) (field[i] - str) + d + 1);
		if (i == 0 && d != 3)
			invalid_input(escontext, RT_CELL, str, len,
						  "The MCC has 3 digits, not %d.", d);
		if (i == 1 && (d < 2 || d > 3))
			invalid_input(escontext, RT_CELL, str, len,
						  "The MNC has 2 or 3 digits, not %d.", d);
		/* leading zeros are not part of the value: 0042 is 42 */
		j = 0;
		while (j < d && field[i][j] == '0')
			j++;
		/* more significant digits than any fmax has (and v could overflow) */
		if (d - j > 12)
			invalid_input(escontext, RT_CELL, str, len,
						  "The %s is out of range (at most " UINT64_FORMAT ").",
						  fname[i], fmax[i]);
		for (; j < d; j++)
			v = v * 10 + (field[i][j] - '0');
		if (v > fmax[i])
			invalid_input(escontext, RT_CELL, str, len,
						  "The %s is out of range (at most " UINT64_FORMAT ").",
						  fname[i], fmax[i]);
		if (i > 0)
			append_char(out, '-');
		if (i < 2)
			append_bytes(out, field[i], flen[i]);
		else
		{
			/* decimal without leading zeros (one "0" for zero) */
			int			z = 0;

			while (z < d - 1 && field[i][z] == '0')
				z++;
			append_bytes(out, field[i] + z, d - z);
		}
	}
	return true;
}

/*
 * retention_normalize: validate str[0..len) as a value of type kind and
 * append its normal form to out.  Returns false after a soft error (when
 * escontext is an ErrorSaveContext); raises otherwise.
 */
bool
retention_normalize(RetentionTypeKind kind, const char *str, int len,
					StringInfo out, Node *escontext)
{
	if (kind == RT_IDENT)
	{
		append_bytes(out, str, len);
		return true;
	}
	/* the empty value: nothing, as a writer that fills every column sends it */
	if (len == 0)
		return true;
	if (len > MAX_VALUE_LEN)
		invalid_input(escontext, kind, str, len,
					  "The value is %d bytes long; no %s is longer than %d.",
					  len, retention_type_names[kind], MAX_VALUE_LEN);
	if (str[0] == '~')
	{
		if (!is_pseudonym(str, len))
			invalid_input(escontext, kind, str, len,
						  "A pseudonym has the form ~k<key id>:<%d hexadecimal digits>.",
						  PSEUDONYM_HEX_LEN);
		append_bytes(out, str, len);
		return true;
	}
	if (kind == RT_CELL)
		return normalize_cell(str, len, out, escontext);
	return normalize_digits(kind, str, len, out, escontext);
}

/*
 * An ident that is an IP address (or prefix) as inet writes it: its family
 * (PGSQL_AF_INET or PGSQL_AF_INET6), address and prefix length; -1 for
 * anything else (a SIP URI, an account id).  Strict: the whole value, in
 * the syntax of type inet.
 */
#define IP_TEXT_MAX 64

static int
parse_ip(const char *str, int len, unsigned char *addr, int *bits)
{
	char		buf[IP_TEXT_MAX];
	int			family;

	if (len <= 0 || len >= IP_TEXT_MAX)
		return -1;
	memcpy(buf, str, len);
	buf[len] = '\0';
	family = memchr(str, ':', len) ? PGSQL_AF_INET6 : PGSQL_AF_INET;
	memset(addr, 0, 16);
	*bits = pg_inet_net_pton(family, buf, addr, -1);
	if (*bits < 0)
		return -1;
	return family;
}

/* the prefix an IP address generalizes to: /24 (IPv4), /48 (IPv6) */
#define IP4_GENERALIZED_BITS 24
#define IP6_GENERALIZED_BITS 48

/*
 * Is an ident an IP prefix at least as coarse as the generalized one, with
 * no host bits set?
 */
static bool
ip_generalized(const char *str, int len)
{
	unsigned char addr[16];
	int			bits;
	int			family = parse_ip(str, len, addr, &bits);
	int			maxbits = family == PGSQL_AF_INET6 ? IP6_GENERALIZED_BITS : IP4_GENERALIZED_BITS;
	int			nbytes = family == PGSQL_AF_INET6 ? 16 : 4;
	int			i;

	if (family < 0 || bits > maxbits)
		return false;
	for (i = 0; i < nbytes; i++)
	{
		int			keep = Min(Max(bits - 8 * i, 0), 8);

		if ((addr[i] & (0xff >> keep)) != 0)
			return false;
	}
	return true;
}

/*
 * retention_ip_generalize: the generalized form of an ident that is an IP
 * address ("192.0.2.0/24", "2001:db8:1::/48"), or NULL when it is none.
 */
text *
retention_ip_generalize(const char *str, int len)
{
	unsigned char addr[16];
	int			bits;
	int			family = parse_ip(str, len, addr, &bits);
	int			keep;
	int			nbytes;
	int			i;
	char		out[IP_TEXT_MAX];

	if (family < 0)
		return NULL;
	keep = Min(bits, family == PGSQL_AF_INET6 ? IP6_GENERALIZED_BITS : IP4_GENERALIZED_BITS);
	nbytes = family == PGSQL_AF_INET6 ? 16 : 4;
	for (i = 0; i < nbytes; i++)
		addr[i] &= ~(0xff >> Min(Max(keep - 8 * i, 0), 8)) & 0xff;
	if (pg_inet_net_ntop(family, addr, keep, out, sizeof(out)) == NULL)
		return NULL;
	return cstring_to_text(out);
}

/* which form a stored (normalized) value is in */
RetentionValueForm
retention_value_form(RetentionTypeKind kind, const char *str, int len)
{
	int			dashes = 0;
	int			i;

	if (len == 0)
		return RV_EMPTY;
	if (is_pseudonym(str, len))
		return RV_PSEUDONYM;
	switch (kind)
	{
		case RT_MSISDN:
		case RT_IMSI:
		case RT_IMEI:
			return (len > 0 && str[len - 1] == '*') ? RV_GENERALIZED : RV_CLEAR;
		case RT_CELL:
			for (i = 0; i < len; i++)
				dashes += (str[i] == '-');
			return dashes == 2 ? RV_GENERALIZED : RV_CLEAR;
		case RT_IDENT:
			return ip_generalized(str, len) ? RV_GENERALIZED : RV_CLEAR;
	}
	return RV_CLEAR;
}

/*
 * A text datum holding the normal form of str, or NULL after a soft error.
 * The normal form is never longer than the input, so it is built in place
 * after the varlena header: one allocation, no copy.
 */
static text *
make_value(RetentionTypeKind kind, const char *str, int len, Node *escontext)
{
	StringInfoData buf;

	buf.maxlen = VARHDRSZ + len + 1;
	buf.data = palloc(buf.maxlen);
	buf.len = VARHDRSZ;
	buf.cursor = 0;
	if (!retention_normalize(kind, str, len, &buf, escontext))
		return NULL;
	SET_VARSIZE(buf.data, buf.len);
	return (text *) buf.data;
}

static Datum
type_in(FunctionCallInfo fcinfo, RetentionTypeKind kind)
{
	char	   *str = PG_GETARG_CSTRING(0);
	text	   *result = make_value(kind, str, strlen(str),
									RETENTION_ESCONTEXT(fcinfo));

	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(result);
}

static Datum
type_recv(FunctionCallInfo fcinfo, RetentionTypeKind kind)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			nbytes;
	char	   *str = pq_getmsgtext(buf, buf->len - buf->cursor, &nbytes);

	PG_RETURN_TEXT_P(make_value(kind, str, nbytes, NULL));
}

static Datum
type_from_text(FunctionCallInfo fcinfo, RetentionTypeKind kind)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(make_value(kind, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), NULL));
}

/* char(n) pads with spaces, which are not part of the value */
static Datum
type_from_bpchar(FunctionCallInfo fcinfo, RetentionTypeKind kind)
{
	BpChar	   *b = PG_GETARG_BPCHAR_PP(0);
	const char *s = VARDATA_ANY(b);
	int			len = VARSIZE_ANY_EXHDR(b);

	while (len > 0 && s[len - 1] == ' ')
		len--;
	PG_RETURN_TEXT_P(make_value(kind, s, len, NULL));
}

/* the SQL-callable entry points of one type */
#define RETENTION_TYPE_FUNCTIONS(name, kind) \
PG_FUNCTION_INFO_V1(retention_##name##_in); \
Datum retention_##name##_in(PG_FUNCTION_ARGS) { return type_in(fcinfo, kind); } \
PG_FUNCTION_INFO_V1(retention_##name##_recv); \
Datum retention_##name##_recv(PG_FUNCTION_ARGS) { return type_recv(fcinfo, kind); } \
PG_FUNCTION_INFO_V1(retention_##name##_from_text); \
Datum retention_##name##_from_text(PG_FUNCTION_ARGS) { return type_from_text(fcinfo, kind); } \
PG_FUNCTION_INFO_V1(retention_##name##_from_bpchar); \
Datum retention_##name##_from_bpchar(PG_FUNCTION_ARGS) { return type_from_bpchar(fcinfo, kind); }

RETENTION_TYPE_FUNCTIONS(msisdn, RT_MSISDN)
RETENTION_TYPE_FUNCTIONS(imsi, RT_IMSI)
RETENTION_TYPE_FUNCTIONS(imei, RT_IMEI)
RETENTION_TYPE_FUNCTIONS(cell, RT_CELL)
RETENTION_TYPE_FUNCTIONS(ident, RT_IDENT)
