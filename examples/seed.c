/* The seed program, in C:
 *
 *   o1 = zeros.remote([5, 5]); o2 = zeros.remote([5, 5]); o3 = add.remote(o1, o2); get(o3)
 *   c = Counter.remote(); c.inc.remote(); c.inc.remote(); get -> [1, 2]
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

/* The seed's Counter: an actor, two calls in order. */
static int counter(prism_client *c)
{
    prism_actor *a = NULL;
    if (prism_actor_create(c, "builtin", "Counter", NULL, 0, NULL, &a) != PRISM_OK)
        return fail("create the Counter actor");
    prism_ref *r[2] = {NULL, NULL};
    long got[2] = {0, 0};
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++)
        if (prism_actor_call(c, a, "inc", NULL, 0, 1, &r[i]) != PRISM_OK)
            rc = fail("call inc");
    for (int i = 0; i < 2 && rc == 0; i++) {
        prism_value *v = NULL;
        if (prism_get(c, r[i], 30000, &v) != PRISM_OK)
            rc = fail("get inc");
        else
            got[i] = atol(prism_value_json_text(v) ? prism_value_json_text(v) : "0");
        prism_value_free(v);
    }
    if (rc == 0)
        printf("Counter: [%ld, %ld]\n", got[0], got[1]);
    prism_ref_release(r[0]);
    prism_ref_release(r[1]);
    prism_actor_kill(c, a, true);
    prism_actor_release(a);
    return rc == 0 && got[0] == 1 && got[1] == 2 ? 0 : 1;
}

int main(void)
{
    prism_client *c;
    if (prism_connect(NULL, &c) != PRISM_OK)
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
    printf("result: a %lldx%lld tensor of float64, sum %g\n", (long long)dims[0],
           (long long)dims[1], total);
    rc = prism_value_ndim(result) == 2 && dims[0] == 5 && dims[1] == 5 && total == 0 ? 0 : 1;
    if (rc == 0)
        rc = counter(c);
out:
    prism_value_free(result);
    prism_value_free(shape);
    prism_ref_release(o1);
    prism_ref_release(o2);
    prism_ref_release(o3);
    prism_disconnect(c);
    return rc;
}
