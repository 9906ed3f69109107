#include "prism_resources.h"

bool prism_res_fits(json_t *have, json_t *used, json_t *want)
{
    const char *name;
    json_t *v;
    json_object_foreach(want, name, v) {
        double left = json_number_value(json_object_get(have, name)) -
                      json_number_value(json_object_get(used, name));
        if (!prism_res_amount_fits(left, json_number_value(v)))
            return false;
    }
    return true;
}

bool prism_res_add(json_t *sum, json_t *amounts)
{
    const char *name;
    json_t *v;
    json_object_foreach(amounts, name, v) {
        double was = json_number_value(json_object_get(sum, name));
        if (json_object_set_new(sum, name, json_real(was + json_number_value(v))) != 0)
            return false;
    }
    return true;
}
