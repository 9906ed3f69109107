/* Resource maps: JSON objects from a resource name to an amount, e.g.
 * {"CPU": 2, "GPU": 1, "memory": 4294967296, "accel": 1}. */
#include <stdio.h>
#include <stdlib.h>

#include "prism_buf.h"
#include "prism_resources.h"
#include "scheduler.h"

void sched_res_add(json_t *acc, json_t *delta, double sign)
{
    const char *name;
    json_t *v;
    json_object_foreach(delta, name, v) {
        json_t *old = json_object_get(acc, name);
        if (!old)
            continue; /* a resource the node does not have stays absent */
        double now = json_number_value(old) + sign * json_number_value(v);
        json_object_set_new(acc, name, json_real(now < PRISM_RES_EPSILON ? 0 : now));
    }
}

char *sched_res_describe(json_t *res)
{
    prism_buf b;
    prism_buf_init(&b, 4096);
    const char *name;
    json_t *v;
    json_object_foreach(res, name, v) {
        if (json_number_value(v) > 0)
            prism_buf_printf(&b, "%s%s %g", b.len ? ", " : "", name, json_number_value(v));
    }
    if (!b.len)
        prism_buf_printf(&b, "no resources");
    return prism_buf_take(&b, NULL);
}

double sched_res_load(json_t *total, json_t *available)
{
    double load = 0;
    const char *name;
    json_t *v;
    json_object_foreach(total, name, v) {
        double t = json_number_value(v);
        if (t <= 0)
            continue;
        double used = (t - json_number_value(json_object_get(available, name))) / t;
        if (used > load)
            load = used;
    }
    return load;
}

const char *sched_res_check(json_t *res)
{
    if (!json_is_object(res))
        return "'resources' must be an object of resource name to amount";
    const char *name;
    json_t *v;
    json_object_foreach(res, name, v) {
        if (!json_is_number(v) || json_number_value(v) < 0)
            return "every amount in 'resources' must be a non-negative number";
    }
    return NULL;
}
