/*-------------------------------------------------------------------------
 *
 * sweep.h
 *	  What the rest of retention tells the sweep (src/sweep.c).
 *
 * Copyright (c) 2026, retention developers
 *
 * src/sweep.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RETENTION_SWEEP_H
#define RETENTION_SWEEP_H

/* rows of leaf relid were stored as written: the next sweep reads it all */
extern void retention_sweep_note_as_written(Oid relid, Oid root);

#endif							/* RETENTION_SWEEP_H */
