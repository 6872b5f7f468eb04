/*-------------------------------------------------------------------------
 *
 * shim.c
 *	  The backend symbols src/types.c and src/typmod.c need, for the
 *	  libFuzzer harnesses that link them outside a server.
 *
 * Each function here does what its PostgreSQL namesake does, as far as
 * the code under test can tell, and no more: the same size limits and
 * error codes (palloc, StringInfo, psprintf come from
 * src/backend/utils/mmgr/mcxt.c, src/common/stringinfo.c and
 * src/common/psprintf.c), UTF-8 as the server encoding (pg_mblen and
 * pg_encoding_verifymbstr are the real ones, from libpgcommon), ereport()
 * that longjmps to the innermost PG_TRY() like the backend's.  The
 * differences serve the sanitizers: every palloc is a malloc of its own,
 * so AddressSanitizer sees a chunk's end, and its bytes are clobbered (a
 * StringInfo's unused tail too, so what is read past its terminating NUL
 * is garbage the properties catch); memory is freed all at once by
 * fuzz_reset_memory(), as a memory context reset would.
 *
 * This is test code: it is not part of the extension, and nothing in src/
 * may depend on it.
 *
 * Copyright (c) 2026, retention developers
 *
 * test/fuzz/shim.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupmacs.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "retention.h"
#include "shim.h"

/*
 * Defined in src/catalog.c, which needs a server; test/fuzz/run checks
 * that this copy says the same.
 */
const char *const retention_type_names[RT_NUM_KINDS] = {
	"msisdn", "imsi", "imei", "cell", "ident"
};

/* ---------------------------------------------------------------------
 * Memory: palloc and friends, one malloc per chunk, freed on reset
 * ---------------------------------------------------------------------
 */
static void **chunks = NULL;
static int	nchunks = 0;
static int	maxchunks = 0;

static void
chunk_remember(void *p)
{
	if (nchunks == maxchunks)
	{
		maxchunks = maxchunks ? maxchunks * 2 : 256;
		chunks = realloc(chunks, maxchunks * sizeof(void *));
		if (chunks == NULL)
			abort();
	}
	chunks[nchunks++] = p;
}

/* index of chunk p; aborts on a pointer palloc did not return */
static int
chunk_find(void *p, const char *caller)
{
	int			i;

	for (i = nchunks - 1; i >= 0; i--)
		if (chunks[i] == p)
			return i;
	fprintf(stderr, "shim: %s(%p): not a palloc'd chunk\n", caller, p);
	abort();
}

static void *
chunk_alloc(Size size, bool zero)
{
	void	   *p;

	if (!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	/* malloc(0) is a chunk of its own, any access to which ASan reports */
	p = malloc(size);
	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %zu.", size)));
	/* like RANDOMIZE_ALLOCATED_MEMORY: never rely on what palloc returns */
	memset(p, zero ? 0 : 0x7f, size);
	chunk_remember(p);
	return p;
}

void *
palloc(Size size)
{
	return chunk_alloc(size, false);
}

void *
palloc0(Size size)
{
	return chunk_alloc(size, true);
}

void *
palloc_extended(Size size, int flags)
{
	return chunk_alloc(size, (flags & MCXT_ALLOC_ZERO) != 0);
}

void *
repalloc(void *pointer, Size size)
{
	int			i = chunk_find(pointer, "repalloc");
	void	   *p;

	if (!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	p = realloc(pointer, size);
	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %zu.", size)));
	chunks[i] = p;
	return p;
}

void
pfree(void *pointer)
{
	int			i = chunk_find(pointer, "pfree");

	free(pointer);
	chunks[i] = chunks[--nchunks];
}

void
fuzz_reset_memory(void)
{
	int			i;

	for (i = 0; i < nchunks; i++)
		free(chunks[i]);
	nchunks = 0;
}

char *
pstrdup(const char *in)
{
	return pnstrdup(in, strlen(in));
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

/* src/common/psprintf.c */
size_t
pvsnprintf(char *buf, size_t len, const char *fmt, va_list args)
{
	int			nprinted;

	nprinted = vsnprintf(buf, len, fmt, args);
	if (unlikely(nprinted < 0))
		elog(ERROR, "vsnprintf failed: %m with format string \"%s\"", fmt);
	if ((size_t) nprinted < len)
		return (size_t) nprinted;
	if (unlikely((size_t) nprinted > MaxAllocSize - 1))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return nprinted + 1;
}

char *
psprintf(const char *fmt,...)
{
	int			save_errno = errno;
	size_t		len = 128;

	for (;;)
	{
		char	   *result;
		va_list		args;
		size_t		newlen;

		result = (char *) palloc(len);
		errno = save_errno;
		va_start(args, fmt);
		newlen = pvsnprintf(result, len, fmt, args);
		va_end(args);
		if (newlen < len)
			return result;
		pfree(result);
		len = newlen;
	}
}

/* ---------------------------------------------------------------------
 * StringInfo (src/common/stringinfo.c).  The buffer is malloc'd at exactly
 * maxlen bytes, so AddressSanitizer reports any write past it.  The bytes
 * between len and maxlen are writable, as in PostgreSQL, where
 * appendStringInfoCharMacro() and callers that checked maxlen themselves
 * (src/types.c's append_bytes()) write there directly.
 * ---------------------------------------------------------------------
 */
StringInfo
makeStringInfo(void)
{
	StringInfo	res = (StringInfo) palloc(sizeof(StringInfoData));

	initStringInfo(res);
	return res;
}

void
initStringInfo(StringInfo str)
{
	int			size = 1024;

	str->data = (char *) palloc(size);
	str->maxlen = size;
	resetStringInfo(str);
}

void
resetStringInfo(StringInfo str)
{
	str->data[0] = '\0';
	str->len = 0;
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int			newlen;

	if (needed < 0)
		elog(ERROR, "invalid string enlargement request size: %d", needed);
	if (((Size) needed) >= (MaxAllocSize - (Size) str->len))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("out of memory"),
				 errdetail("Cannot enlarge string buffer containing %d bytes by %d more bytes.",
						   str->len, needed)));

	needed += str->len + 1;
	if (needed > str->maxlen)
	{
		newlen = 2 * str->maxlen;
		while (needed > newlen)
			newlen = 2 * newlen;
		if (newlen > (int) MaxAllocSize)
			newlen = (int) MaxAllocSize;
		str->data = (char *) repalloc(str->data, newlen);
		str->maxlen = newlen;
	}
}

int
appendStringInfoVA(StringInfo str, const char *fmt, va_list args)
{
	int			avail;
	size_t		nprinted;

	avail = str->maxlen - str->len;
	if (avail < 16)
		return 32;
	nprinted = pvsnprintf(str->data + str->len, (size_t) avail, fmt, args);
	if (nprinted < (size_t) avail)
	{
		str->len += (int) nprinted;
		return 0;
	}
	str->data[str->len] = '\0';
	return (int) nprinted;
}

void
appendStringInfo(StringInfo str, const char *fmt,...)
{
	int			save_errno = errno;

	for (;;)
	{
		va_list		args;
		int			needed;

		errno = save_errno;
		va_start(args, fmt);
		needed = appendStringInfoVA(str, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(str, needed);
	}
}

void
appendBinaryStringInfo(StringInfo str, RETENTION_BINARY_DATA *data, int datalen)
{
	Assert(str != NULL);
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendBinaryStringInfoNT(StringInfo str, RETENTION_BINARY_DATA *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
}

void
appendStringInfoString(StringInfo str, const char *s)
{
	appendBinaryStringInfo(str, s, strlen(s));
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	if (str->len + 1 >= str->maxlen)
		enlargeStringInfo(str, 1);
	str->data[str->len] = ch;
	str->len++;
	str->data[str->len] = '\0';
}

void
appendStringInfoSpaces(StringInfo str, int count)
{
	if (count > 0)
	{
		enlargeStringInfo(str, count);
		memset(str->data + str->len, ' ', count);
		str->len += count;
		str->data[str->len] = '\0';
	}
}

/* ---------------------------------------------------------------------
 * ereport: errstart/errfinish, longjmp to the innermost PG_TRY
 * ---------------------------------------------------------------------
 */
sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;

static FuzzError cur;			/* the report being built */
static bool building = false;
static FuzzError pending;		/* the ERROR raised, until taken */
static bool have_pending = false;

bool
errstart(int elevel, const char *domain)
{
	if (elevel < ERROR)
		return false;			/* NOTICE and below: nobody listens here */
	if (building)
	{
		fprintf(stderr, "shim: error raised while reporting an error\n");
		abort();
	}
	memset(&cur, 0, sizeof(cur));
	cur.elevel = elevel;
	cur.sqlerrcode = ERRCODE_INTERNAL_ERROR;
	building = true;
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

#ifdef RETENTION_HAVE_ERRSAVE
/*
 * ereturn() on 16+ (see compat.h): without an ErrorSaveContext it raises,
 * as on 15; with one it only flags the error (the harnesses pass none, and
 * ask for no details).
 */
bool
errsave_start(struct Node *context, const char *domain)
{
	if (context != NULL && IsA(context, ErrorSaveContext))
	{
		ErrorSaveContext *escontext = (ErrorSaveContext *) context;

		escontext->error_occurred = true;
		if (!escontext->details_wanted)
			return false;
		fprintf(stderr, "shim: the harnesses never ask for soft error details\n");
		abort();
	}
	return errstart(ERROR, domain);
}

void
errsave_finish(struct Node *context, const char *filename, int lineno,
			   const char *funcname)
{
	errfinish(filename, lineno, funcname);
}
#endif

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	building = false;
	cur.filename = filename;
	cur.lineno = lineno;
	pending = cur;
	have_pending = true;
	if (cur.elevel > ERROR)
	{
		fprintf(stderr, "shim: %s at %s:%d: %s\n",
				cur.elevel == FATAL ? "FATAL" : "PANIC", filename, lineno,
				cur.message ? cur.message : "(no message)");
		abort();
	}
	pg_re_throw();
}

void
pg_re_throw(void)
{
	if (PG_exception_stack == NULL)
	{
		fprintf(stderr, "shim: ERROR outside PG_TRY at %s:%d: %s\n",
				pending.filename ? pending.filename : "?", pending.lineno,
				pending.message ? pending.message : "(no message)");
		abort();
	}
	siglongjmp(*PG_exception_stack, 1);
}

bool
fuzz_take_error(FuzzError *err)
{
	if (!have_pending)
		return false;
	*err = pending;
	have_pending = false;
	return true;
}

const char *
fuzz_sqlstate(int sqlerrcode)
{
	static char buf[6];
	int			i;

	for (i = 0; i < 5; i++)
	{
		buf[i] = PGUNSIXBIT(sqlerrcode);
		sqlerrcode >>= 6;
	}
	buf[5] = '\0';
	return buf;
}

int
errcode(int sqlerrcode)
{
	cur.sqlerrcode = sqlerrcode;
	return 0;
}

/* format one field of the report, as EVALUATE_MESSAGE does */
static char *
format_field(const char *fmt, va_list args)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		copy;
		int			needed;

		va_copy(copy, args);
		needed = appendStringInfoVA(&buf, fmt, copy);
		va_end(copy);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	return buf.data;
}

#define FORMAT_INTO(field) \
	do { \
		va_list		args; \
		va_start(args, fmt); \
		cur.field = format_field(fmt, args); \
		va_end(args); \
	} while (0)

int
errmsg(const char *fmt,...)
{
	FORMAT_INTO(message);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	FORMAT_INTO(message);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	FORMAT_INTO(detail);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	FORMAT_INTO(detail);
	return 0;
}

int
errhint(const char *fmt,...)
{
	FORMAT_INTO(hint);
	return 0;
}

void
ExceptionalCondition(RETENTION_EXCEPTIONAL_CONDITION_ARGS)
{
	fprintf(stderr, "TRAP: %s(\"%s\", File: \"%s\", Line: %d)\n",
			RETENTION_ERROR_TYPE, conditionName, fileName, lineNumber);
	abort();
}

/* ---------------------------------------------------------------------
 * Encoding: the server's is UTF-8
 * ---------------------------------------------------------------------
 */
int
pg_mblen(const char *mbstr)
{
	return pg_utf_mblen((const unsigned char *) mbstr);
}

/* src/backend/utils/mb/mbutils.c, pg_encoding_mbcliplen() */
int
pg_mbcliplen(const char *mbstr, int len, int limit)
{
	int			clen = 0;
	int			l;

	while (len > 0 && *mbstr)
	{
		l = pg_mblen(mbstr);
		if ((clen + l) > limit)
			break;
		clen += l;
		if (clen == limit)
			break;
		len -= l;
		mbstr += l;
	}
	return clen;
}

bool
fuzz_server_valid(const char *s, int len)
{
	return pg_encoding_verifymbstr(PG_UTF8, s, len) == len;
}

/* pq_getmsgtext: client and server encodings are both UTF-8 */
char *
pq_getmsgtext(StringInfo msg, int rawbytes, int *nbytes)
{
	char	   *str;
	char	   *p;

	if (rawbytes < 0 || rawbytes > (msg->len - msg->cursor))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("insufficient data left in message")));
	str = &msg->data[msg->cursor];
	msg->cursor += rawbytes;

	/* pg_client_to_server() without conversion: pg_verify_mbstr() */
	if (!fuzz_server_valid(str, rawbytes))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("invalid byte sequence for encoding \"UTF8\"")));

	p = (char *) palloc(rawbytes + 1);
	memcpy(p, str, rawbytes);
	p[rawbytes] = '\0';
	*nbytes = rawbytes;
	return p;
}

/* ---------------------------------------------------------------------
 * Varlena and arrays
 * ---------------------------------------------------------------------
 */
text *
cstring_to_text_with_len(const char *s, int len)
{
	text	   *result = (text *) palloc(len + VARHDRSZ);

	SET_VARSIZE(result, len + VARHDRSZ);
	memcpy(VARDATA(result), s, len);
	return result;
}

text *
cstring_to_text(const char *s)
{
	return cstring_to_text_with_len(s, strlen(s));
}

struct varlena *
fuzz_text(const char *s, int len, bool short_header)
{
	struct varlena *v;

	if (short_header && len + VARHDRSZ_SHORT <= VARATT_SHORT_MAX)
	{
		v = palloc(len + VARHDRSZ_SHORT);
		SET_VARSIZE_SHORT(v, len + VARHDRSZ_SHORT);
		memcpy(VARDATA_SHORT(v), s, len);
		return v;
	}
	return (struct varlena *) cstring_to_text_with_len(s, len);
}

/* the harnesses make no toasted values: detoasting is the identity */
struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	if (VARATT_IS_EXTENDED(datum))
	{
		/* a short header is "extended" too: heap_tuple_untoast_attr copies */
		if (VARATT_IS_SHORT(datum))
		{
			Size		len = VARSIZE_SHORT(datum) - VARHDRSZ_SHORT;
			struct varlena *v = palloc(len + VARHDRSZ);

			SET_VARSIZE(v, len + VARHDRSZ);
			memcpy(VARDATA(v), VARDATA_SHORT(datum), len);
			return v;
		}
		fprintf(stderr, "shim: pg_detoast_datum of a toasted value\n");
		abort();
	}
	return datum;
}

struct varlena *
pg_detoast_datum_packed(struct varlena *datum)
{
	if (VARATT_IS_COMPRESSED(datum) || VARATT_IS_EXTERNAL(datum))
	{
		fprintf(stderr, "shim: pg_detoast_datum_packed of a toasted value\n");
		abort();
	}
	return datum;
}

int
ArrayGetNItems(int ndim, const int *dims)
{
	int			ret = 1;
	int			i;

	if (ndim <= 0)
		return 0;
	for (i = 0; i < ndim; i++)
	{
		if (dims[i] < 0 || (dims[i] > 0 && ret > (int) MaxArraySize / dims[i]))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("array size exceeds the maximum allowed (%d)",
							(int) MaxArraySize)));
		ret *= dims[i];
	}
	return ret;
}

bool
array_contains_nulls(ArrayType *array)
{
	int			nelems;
	bits8	   *bitmap;
	int			bitmask;

	if (!ARR_HASNULL(array))
		return false;
	nelems = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	bitmap = ARR_NULLBITMAP(array);
	while (nelems >= 8)
	{
		if (*bitmap != 0xFF)
			return true;
		bitmap++;
		nelems -= 8;
	}
	bitmask = 1;
	while (nelems > 0)
	{
		if ((*bitmap & bitmask) == 0)
			return true;
		bitmask <<= 1;
		nelems--;
	}
	return false;
}

/* src/backend/utils/adt/arrayfuncs.c */
void
deconstruct_array(ArrayType *array, Oid elmtype, int elmlen, bool elmbyval,
				  char elmalign, Datum **elemsp, bool **nullsp, int *nelemsp)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char	   *p;
	bits8	   *bitmap;
	int			bitmask;
	int			i;

	Assert(ARR_ELEMTYPE(array) == elmtype);

	nelems = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	*elemsp = elems = (Datum *) palloc(nelems * sizeof(Datum));
	if (nullsp)
		*nullsp = nulls = (bool *) palloc0(nelems * sizeof(bool));
	else
		nulls = NULL;
	*nelemsp = nelems;

	p = ARR_DATA_PTR(array);
	bitmap = ARR_NULLBITMAP(array);
	bitmask = 1;

	for (i = 0; i < nelems; i++)
	{
		if (bitmap && (*bitmap & bitmask) == 0)
		{
			elems[i] = (Datum) 0;
			if (nulls)
				nulls[i] = true;
			else
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("null array element not allowed in this context")));
		}
		else
		{
			elems[i] = fetch_att(p, elmbyval, elmlen);
			p = att_addlength_pointer(p, elmlen, p);
			p = (char *) att_align_nominal(p, elmalign);
		}

		if (bitmap)
		{
			bitmask <<= 1;
			if (bitmask == 0x100)
			{
				bitmap++;
				bitmask = 1;
			}
		}
	}
}

ArrayType *
fuzz_cstring_array(const char *const *elems, const bool *nulls, int n, int ndim)
{
	bool		hasnull = false;
	Size		datasize = 0;
	Size		overhead;
	ArrayType  *a;
	char	   *p;
	bits8	   *bitmap;
	int			i;

	Assert(n > 0 && (ndim == 1 || (ndim == 2 && n % 2 == 0)));
	for (i = 0; i < n; i++)
	{
		if (nulls && nulls[i])
			hasnull = true;
		else
			datasize += strlen(elems[i]) + 1;
	}
	overhead = hasnull ? ARR_OVERHEAD_WITHNULLS(ndim, n) : ARR_OVERHEAD_NONULLS(ndim);
	a = (ArrayType *) palloc0(overhead + datasize);
	SET_VARSIZE(a, overhead + datasize);
	a->ndim = ndim;
	a->dataoffset = hasnull ? overhead : 0;
	a->elemtype = CSTRINGOID;
	if (ndim == 1)
		ARR_DIMS(a)[0] = n;
	else
	{
		ARR_DIMS(a)[0] = n / 2;
		ARR_DIMS(a)[1] = 2;
	}
	for (i = 0; i < ndim; i++)
		ARR_LBOUND(a)[i] = 1;

	bitmap = ARR_NULLBITMAP(a);
	p = ARR_DATA_PTR(a);
	for (i = 0; i < n; i++)
	{
		if (nulls && nulls[i])
			continue;			/* its bit stays 0 */
		if (bitmap)
			bitmap[i / 8] |= 1 << (i % 8);
		strcpy(p, elems[i]);
		p += strlen(elems[i]) + 1;
	}
	return a;
}

/* ---------------------------------------------------------------------
 * Reporting a property violation
 * ---------------------------------------------------------------------
 */
void
fuzz_fail(const char *what, const uint8 *data, size_t size, const char *fmt,...)
{
	va_list		args;
	size_t		i;

	fprintf(stderr, "\n=== property violated: %s\n=== input (%zu bytes): \"", what, size);
	for (i = 0; i < size && i < 80; i++)
	{
		if (data[i] >= 0x20 && data[i] < 0x7f && data[i] != '"' && data[i] != '\\')
			fputc(data[i], stderr);
		else
			fprintf(stderr, "\\x%02x", data[i]);
	}
	fprintf(stderr, "%s\"\n=== ", size > 80 ? "..." : "");
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fprintf(stderr, "\n");
	abort();
}
