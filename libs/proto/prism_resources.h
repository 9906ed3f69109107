/* Resource maps: JSON objects from a resource name to an amount, e.g.
 * {"CPU": 2, "GPU": 1, "memory": 4294967296, "accel": 1} (docs/protocol.md).
 * The GCS, the scheduler and the node agent all decide with the same rule
 * whether a request fits, so a request one of them accepts is not refused by
 * the next for a rounding difference. */
#ifndef PRISM_RESOURCES_H
#define PRISM_RESOURCES_H

#include <stdbool.h>

#include <jansson.h>

/* The slack of every comparison of amounts, so that fractional CPUs add up
 * (0.1 asked ten times fits in 1 CPU). Amounts within it of zero are zero. */
#define PRISM_RES_EPSILON 1e-9

/* Whether an amount `need` fits in `have`: a need of zero or less always
 * fits, else `have` must reach `need` less PRISM_RES_EPSILON. */
static inline bool prism_res_amount_fits(double have, double need)
{
    return need <= 0 || !(have + PRISM_RES_EPSILON < need);
}

/* Whether every amount `want` asks for fits in `have` less `used` (`used`
 * may be NULL: nothing used). A name absent from `have` or `used` counts as
 * 0, so asking a positive amount of a resource the node lacks never fits;
 * names only in `have` are not looked at. */
bool prism_res_fits(json_t *have, json_t *used, json_t *want);

/* Adds every amount of `amounts` to `sum`, names `sum` lacks starting at 0.
 * Returns false when out of memory (`sum` then holds part of the amounts). */
bool prism_res_add(json_t *sum, json_t *amounts);

#endif
