/*-------------------------------------------------------------------------
 *
 * shim.h
 *	  What the fuzz harnesses ask of the backend shim (shim.c) beyond the
 *	  backend symbols it provides.
 *
 * The shim stands in for the parts of the PostgreSQL server that
 * src/types.c and src/typmod.c call: memory, StringInfo, ereport, UTF-8,
 * arrays, detoasting.  A harness runs each input inside PG_TRY(), takes
 * the error (if any) with fuzz_take_error(), and ends with
 * fuzz_reset_memory(), the stand-in for resetting the per-call memory
 * context.
 *
 * Copyright (c) 2026, retention developers
 *
 * test/fuzz/shim.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RETENTION_FUZZ_SHIM_H
#define RETENTION_FUZZ_SHIM_H

#include "postgres.h"

#include "utils/array.h"

#include "compat.h"

/* the last ERROR raised, as the harness sees it after PG_CATCH() */
typedef struct FuzzError
{
	int			elevel;
	int			sqlerrcode;
	char	   *message;		/* palloc'd, valid until fuzz_reset_memory */
	char	   *detail;			/* NULL if none */
	char	   *hint;			/* NULL if none */
	const char *filename;
	int			lineno;
} FuzzError;

/* move the pending error into *err and clear it; false if there is none */
extern bool fuzz_take_error(FuzzError *err);

/* "22P02" from an errcode */
extern const char *fuzz_sqlstate(int sqlerrcode);

/* free everything palloc'd since the last reset (a memory context reset) */
extern void fuzz_reset_memory(void);

/* is s[0..len) valid UTF-8 without NUL, as the server checks its input? */
extern bool fuzz_server_valid(const char *s, int len);

/* a text datum; a short (1-byte) header when it fits, as on disk */
extern struct varlena *fuzz_text(const char *s, int len, bool short_header);

/*
 * A cstring[] array as the parser hands it to a typmod_in function:
 * ndim 1 (or 2 with two columns), elements elems[0..n), NULL where
 * nulls[i] (nulls may be NULL).
 */
extern ArrayType *fuzz_cstring_array(const char *const *elems, const bool *nulls,
									 int n, int ndim);

/* print a property violation with the input, then abort (a libFuzzer crash) */
pg_noreturn extern void fuzz_fail(const char *what, const uint8 *data, size_t size,
								  const char *fmt,...) pg_attribute_printf(4, 5);

#endif							/* RETENTION_FUZZ_SHIM_H */
