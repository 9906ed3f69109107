/* The seed program, in C:
 *
 *   o1 = zeros.remote([5, 5]); o2 = zeros.remote([5, 5]); o3 = add.remote(o1, o2); get(o3)
 *
 * Run it against a cluster (`prism up`), or as a job:
 *   prism job submit --wait -- build/bin/prism-example-seed */
#include <stdio.h>
#include <stdlib.h>

#include <prism/prism.h>

static int fail(const char *what)
{
    fprintf(stderr, "seed: %s: %s\n", what, prism_last_error());
    return 1;
}

int main(void)
{
    prism_client *c;
    if (prism_connect(&c, NULL) != PRISM_OK)
        return fail("connect");
    prism_value *shape = prism_value_json("[5, 5]");
    prism_ref *o1 = NULL, *o2 = NULL, *o3 = NULL;
    prism_value *result = NULL;
    int rc = 1;
    if (prism_submit(c, "builtin", "zeros", &shape, 1, NULL, &o1) != PRISM_OK ||
        prism_submit(c, "builtin", "zeros", &shape, 1, NULL, &o2) != PRISM_OK) {
        rc = fail("submit zeros");
        goto out;
    }
    prism_value *args[2] = {prism_value_ref(o1), prism_value_ref(o2)};
    prism_status s = prism_submit(c, "builtin", "add", args, 2, NULL, &o3);
    prism_value_free(args[0]);
    prism_value_free(args[1]);
    if (s != PRISM_OK) {
        rc = fail("submit add");
        goto out;
    }
    if (prism_get(c, o3, 30000, &result) != PRISM_OK) {
        rc = fail("get");
        goto out;
    }
    const int64_t *dims = prism_value_shape(result);
    size_t len;
    const double *data = prism_value_data(result, &len);
    double total = 0;
    for (size_t i = 0; i < len / sizeof *data; i++)
        total += data[i];
    printf("result: a %lldx%lld tensor of float64, sum %g\n", (long long)dims[0], (long long)dims[1],
           total);
    rc = prism_value_ndim(result) == 2 && dims[0] == 5 && dims[1] == 5 && total == 0 ? 0 : 1;
out:
    prism_value_free(result);
    prism_value_free(shape);
    prism_ref_release(o1);
    prism_ref_release(o2);
    prism_ref_release(o3);
    prism_disconnect(c);
    return rc;
}
