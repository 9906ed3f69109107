#include <stdlib.h>
#include <string.h>

#include "gcs.h"
#include "prism_buf.h"

/* Amounts are compared with a little slack so fractional CPUs add up. */
#define EPS 1e-9

bool gcs_res_fits(json_t *total, json_t *used, json_t *want)
{
    const char *name;
    json_t *v;
    json_object_foreach(want, name, v) {
        double need = json_number_value(v);
        if (need <= 0)
            continue;
        double have = json_number_value(json_object_get(total, name)) -
                      json_number_value(json_object_get(used, name));
        if (have + EPS < need)
            return false;
    }
    return true;
}

void gcs_res_add(json_t *acc, json_t *delta, double sign)
{
    const char *name;
    json_t *v;
    json_object_foreach(delta, name, v) {
        double now = json_number_value(json_object_get(acc, name)) + sign * json_number_value(v);
        if (now < EPS && now > -EPS)
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
