#include <stdio.h>
#include <string.h>

#include "prism_internal.h"

/* The options structs' sizes are part of the ABI: a later minor version adds
 * a field by taking room from `reserved`, never by growing one (docs/api-c.md). */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(prism_connect_options) == 80, "prism_connect_options changed size");
_Static_assert(sizeof(prism_task_options) == 136, "prism_task_options changed size");
_Static_assert(sizeof(prism_actor_options) == 152, "prism_actor_options changed size");
_Static_assert(sizeof(prism_placement_group_options) == 72,
               "prism_placement_group_options changed size");
#endif

static __thread char last_error[1024];
static __thread prism_status last_status;

const char *prism_version(void) { return PRISM_VERSION; }

int prism_version_number(void) { return PRISM_VERSION_NUMBER; }

const char *prism_status_text(prism_status s)
{
    switch (s) {
    case PRISM_OK: return "ok";
    case PRISM_ERR_INVALID: return "invalid argument";
    case PRISM_ERR_CONNECT: return "cannot reach the cluster";
    case PRISM_ERR_TIMEOUT: return "timed out";
    case PRISM_ERR_TASK: return "the task failed";
    case PRISM_ERR_UNKNOWN_FUNCTION: return "unknown package or function";
    case PRISM_ERR_WORKER_DIED: return "the task's worker died";
    case PRISM_ERR_OBJECT_LOST: return "the object is lost";
    case PRISM_ERR_OWNER_DIED: return "the object's owner died";
    case PRISM_ERR_CANCELLED: return "the task was cancelled";
    case PRISM_ERR_NO_MEMORY: return "out of memory";
    case PRISM_ERR_INTERNAL: return "internal error";
    case PRISM_ERR_ACTOR_DIED: return "actor died";
    }
    return "unknown status";
}

const char *prism_last_error(void) { return last_error; }

prism_status prism_last_status(void) { return last_status; }

prism_status prism__fail(prism_status s, const char *fmt, ...)
{
    last_status = s;
    /* Formatted aside first: a caller may pass prism_last_error() itself as
     * an argument, and vsnprintf into the buffer it reads from is undefined. */
    char text[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(last_error, text, sizeof last_error);
    return s;
}

bool prism__reserved_zero(const uint64_t *reserved, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (reserved[i])
            return false;
    return true;
}

bool prism__same_store(const char *node, const char *socket, const char *my_node,
                       const char *my_socket)
{
    if (node && *node && my_node && *my_node)
        return !strcmp(node, my_node);
    return socket && *socket && my_socket && !strcmp(socket, my_socket);
}
