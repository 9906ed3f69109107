#include "prism_subjects.h"

#include <stdio.h>

static bool fits(int written, size_t n) { return written >= 0 && (size_t)written < n; }

bool prism_subject_node(char *out, size_t n, const char *node_id, const char *verb)
{
    return fits(snprintf(out, n, PRISM_SUBJECT_NODE_PREFIX "%s.%s", node_id, verb), n);
}

bool prism_subject_worker_granted(char *out, size_t n, const char *worker_id)
{
    return fits(snprintf(out, n, "prism.worker.%s.granted", worker_id), n);
}

bool prism_subject_owner(char *out, size_t n, const char *hex, bool reply)
{
    return fits(snprintf(out, n, PRISM_SUBJECT_OWNER_PREFIX "%s%s", hex,
                         reply ? PRISM_SUBJECT_OWNER_REPLY_SUFFIX : ""),
                n);
}
