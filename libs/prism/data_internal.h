/* What data.c and data_iter.c share (include/prism/data.h). */
#ifndef PRISM_DATA_INTERNAL_H
#define PRISM_DATA_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "prism/data.h"
#include "prism_block.h"
#include "prism_httpc.h"
#include "prism_plan.h"

/* One REST call with a JSON text body (NULL: none): `*doc` the parsed
 * answer (NULL when not JSON). Returns 0, or -1 (transport) with `err`. */
int prism__data_rest(prism_httpc *h, const char *method, const char *path, const char *body,
                     int timeout_ms, long *status, json_t **doc, char *err, size_t n);
/* PRISM_OK for a 2xx answer, else the failure it stands for, recorded. */
prism_status prism__data_answer(long status, json_t *doc, const char *what);
/* Posts the dataset's plan (`stream`: its output streamed to a consumer):
 * a client for the GCS in `*h` (owned) and the dataset's ID. */
prism_status prism__data_start(prism_dataset *ds, bool stream, prism_httpc **h, char *id,
                               size_t idlen);
/* The same for iter_batches: streamed, batches of `batch_size` rows (a hint
 * for the blocks' sizes). */
prism_status prism__data_start_batches(prism_dataset *ds, int64_t batch_size, prism_httpc **h,
                                       char *id, size_t idlen);
/* Whether the dataset's rows must come in order (preserve_order). */
bool prism__data_in_order(const prism_dataset *ds);
/* The client a dataset was built for. */
prism_client *prism__data_client(const prism_dataset *ds);

/* A batch: a block, or a view of one. */
struct prism_batch {
    prism_block *blk;
};

#endif
