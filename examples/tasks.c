/* An example task package. Build: part of the tree's build (examples/), or
 *   cc -shared -fPIC -I include tasks.c -o tasks.so -L build/lib -lprism
 * then `prism package upload tasks.so` and submit "square" by the printed sha256. */
#include <stdio.h>
#include <stdlib.h>

#include <prism/task.h>

/* square(x): x * x for a JSON number. */
PRISM_TASK(square)
{
    const char *text = nargs == 1 ? prism_value_json_text(args[0]) : NULL;
    char *end;
    double x = text ? strtod(text, &end) : 0;
    if (!text || *end)
        return prism_task_fail(ctx, "square takes one JSON number");
    char out[64];
    snprintf(out, sizeof out, "%.17g", x * x);
    returns[0] = prism_value_json(out);
    return PRISM_OK;
}

/* checksum(bytes or tensor): the sum of all bytes, to check large arguments arrive intact. */
PRISM_TASK(checksum)
{
    size_t len = 0;
    const unsigned char *p = nargs == 1 ? prism_value_data(args[0], &len) : NULL;
    if (!p)
        return prism_task_fail(ctx, "checksum takes bytes or a tensor");
    unsigned long long sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += p[i];
    char out[64];
    snprintf(out, sizeof out, "%llu", sum);
    returns[0] = prism_value_json(out);
    return PRISM_OK;
}

/* crash(): kills its worker, to test retries. */
PRISM_TASK(crash)
{
    abort();
}
