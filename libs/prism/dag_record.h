/* What travels on a compiled DAG's channels, shared by the driver (dag.c)
 * and the actors' loops (services/worker/dag_loop.c); docs/dags.md#records.
 *
 * A record is a 16-byte head, then a body:
 *
 *   u8 tag | 15 zero bytes | body
 *   DAG_REC_VALUE  the value (codec.h); the head keeps tensor data aligned
 *   DAG_REC_ERROR  str name ("Class.method"), str message: a method failed
 *   DAG_REC_DIED   str name, str message: an actor upstream died
 *
 * An error record goes on through every node downstream, so the execution's
 * get names the method that failed, and the next execution runs normally. */
#ifndef PRISM_DAG_RECORD_H
#define PRISM_DAG_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include "prism_internal.h"

enum { DAG_REC_VALUE = 0, DAG_REC_ERROR = 1, DAG_REC_DIED = 2 };
#define DAG_REC_HEAD 16

/* Whether a value holds an object reference anywhere (edges carry plain values). */
bool prism__dag_has_ref(const prism_value *v);
/* Writes a value record into `buf` of `cap` bytes: its length, or 0 when it
 * does not fit. */
size_t prism__dag_put_value(void *buf, size_t cap, const prism_value *v);
/* Writes an error or died record (truncating the message to fit); 0 when
 * not even the head fits. */
size_t prism__dag_put_error(void *buf, size_t cap, int tag, const char *name, const char *msg);
/* The record's tag, or -1 when it is malformed. */
int prism__dag_tag(const void *buf, size_t len);
/* A value record's value: copied, or with `in_place` pointing into `buf`
 * for bytes and tensors (valid while the slot is held). NULL when malformed. */
prism_value *prism__dag_get_value(const void *buf, size_t len, bool in_place);
/* An error or died record's name and message (heap copies, the caller's). */
int prism__dag_get_error(const void *buf, size_t len, char **name, char **msg);

#endif
