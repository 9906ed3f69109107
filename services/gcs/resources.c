#include <stdlib.h>
#include <string.h>

#include "gcs.h"
#include "prism_buf.h"
#include "prism_resources.h"

void gcs_res_add(json_t *acc, json_t *delta, double sign)
{
    const char *name;
    json_t *v;
    json_object_foreach(delta, name, v) {
        double now = json_number_value(json_object_get(acc, name)) + sign * json_number_value(v);
        if (now < PRISM_RES_EPSILON && now > -PRISM_RES_EPSILON)
            now = 0;
        json_object_set_new(acc, name, json_real(now));
    }
}

char *gcs_res_describe(json_t *res)
{
    prism_buf b;
    prism_buf_init(&b, 4096);
    const char *name;
    json_t *v;
    json_object_foreach(res, name, v) {
        if (json_number_value(v) <= 0)
            continue;
        prism_buf_printf(&b, "%s%s %g", b.len ? ", " : "", name, json_number_value(v));
    }
    return prism_buf_take(&b, NULL);
}
