/* Dataset plans (libs/data/prism_plan.h) on any bytes: parsed and checked;
 * a refused plan must say why, an accepted one must come back the same from
 * its canonical JSON, optimize, and explain; every operator of the plan must
 * land in exactly one operator of the optimized plan and in one stage. The
 * same operators appended one by one through the builder must give the same
 * verdict and the same message. Input: plan JSON text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_plan.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "%s\n", what);
        abort();
    }
}

static void check_optimized(const prism_plan *p)
{
    prism_physical_plan *pp;
    prism_plan_error e;
    check(prism_plan_optimize(p, &pp, &e) == PRISM_PLAN_OK, "a valid plan did not optimize");
    size_t n = prism_plan_num_ops(p);
    unsigned char *seen = calloc(n ? n : 1, 1);
    check(seen != NULL, "out of memory");
    size_t stages = prism_physical_plan_num_stages(pp);
    check(stages >= 1, "no stage");
    for (size_t i = 0; i < stages; i++) {
        prism_plan_stage s;
        prism_physical_plan_stage(pp, i, &s);
        check(s.num_ops >= 1 && s.name && s.name[0] && s.resources, "an empty stage");
        /* the read leads: its own stage, or an all-to-all it is fused into */
        check(i > 0 || s.kind == PRISM_STAGE_READ ||
                  (s.kind == PRISM_STAGE_ALL_TO_ALL &&
                   prism_plan_op_is_read(prism_physical_plan_op(pp, 0, 0, NULL, NULL, NULL))),
              "the read is not the first stage");
        check(s.next > i && s.next <= stages && (s.next == stages) == (i + 1 == stages),
              "a stage's output goes nowhere, backwards, or out before the last stage");
        if (s.row_limit >= 0) {
            prism_plan_stage next;
            prism_physical_plan_stage(pp, s.next, &next);
            check(next.kind == PRISM_STAGE_LIMIT && next.limit == s.row_limit,
                  "a row limit without the limit stage after it");
        }
        for (size_t j = 0; j < s.num_ops; j++) {
            const json_t *spec;
            const int *logical;
            size_t nl;
            prism_plan_op_kind k = prism_physical_plan_op(pp, i, j, &spec, &logical, &nl);
            check(k < PRISM_OP_KIND_COUNT && spec && nl >= 1, "a stage operator without origin");
            for (size_t x = 0; x < nl; x++) {
                /* the operators of a union's or zip's other datasets all stand for it */
                check(logical[x] >= 0 && (size_t)logical[x] < n &&
                          (!seen[logical[x]] ||
                           prism_plan_op(p, (size_t)logical[x]) == PRISM_OP_UNION ||
                           prism_plan_op(p, (size_t)logical[x]) == PRISM_OP_ZIP),
                      "an operator in two places of the optimized plan");
                seen[logical[x]] = 1;
            }
        }
    }
    if (prism_physical_plan_write(pp, NULL) != PRISM_OP_KIND_COUNT) /* in no stage: last */
        seen[n - 1] = 1;
    for (size_t i = 0; i < n; i++)
        check(seen[i], "an operator lost by the optimizer");
    free(seen);
    json_t *j = prism_physical_plan_to_json(pp);
    check(j != NULL, "physical plan to JSON");
    json_decref(j);
    prism_physical_plan_destroy(pp);

    char *text = prism_plan_explain(p, &e);
    check(text != NULL && text[0], "explain");
    free(text);
    j = prism_plan_explain_json(p, &e);
    check(j != NULL, "explain as JSON");
    json_decref(j);
}

/* The builder, fed the same operators: the same verdict and message. */
static void check_builder(json_t *root, prism_plan_status st, const prism_plan_error *err,
                          const prism_plan *parsed)
{
    json_t *ops = json_object_get(root, "ops");
    /* Only plans of operators alone: names and options take other calls. */
    if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_array(ops) ||
        json_array_size(ops) == 0 || json_array_size(ops) > PRISM_PLAN_MAX_OPS)
        return;
    prism_plan *b;
    check(prism_plan_create(NULL, &b, NULL) == PRISM_PLAN_OK, "create");
    prism_plan_status bst = PRISM_PLAN_OK;
    for (size_t i = 0; i < json_array_size(ops) && bst == PRISM_PLAN_OK; i++) {
        char *op = json_dumps(json_array_get(ops, i), JSON_COMPACT | JSON_ENCODE_ANY);
        check(op != NULL, "dump");
        bst = prism_plan_append_json(b, op);
        free(op);
    }
    /* An operator that is not an object cannot go through append_json's
     * object parse with the same message; only compare the others. */
    const prism_plan_error *be = prism_plan_last_error(b);
    if (!(st != PRISM_PLAN_OK && strstr(err->message, "must be an object {\"op\""))) {
        check(bst == st, "the builder and from_json disagree");
        if (st != PRISM_PLAN_OK)
            check(be && !strcmp(be->message, err->message), "the builder says otherwise");
        else {
            char *a = prism_plan_to_json(parsed, NULL), *c = prism_plan_to_json(b, NULL);
            check(a && c && !strcmp(a, c), "the builder made another plan");
            free(a);
            free(c);
        }
    }
    prism_plan_destroy(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    prism_plan *p = NULL;
    prism_plan_error e;
    prism_plan_status st = prism_plan_from_json((const char *)data, size, &p, &e);
    if (st != PRISM_PLAN_OK) {
        check(p == NULL, "a refused plan was returned");
        check(e.status == st && e.message[0], "a refusal without a reason");
        check(strcmp(prism_plan_status_code(st), "ok") != 0, "a refusal coded ok");
    } else {
        check(p != NULL && prism_plan_num_ops(p) >= 1, "an accepted plan without operators");
        check(prism_plan_op_is_read(prism_plan_op(p, 0)), "an accepted plan without a read first");
        char *a = prism_plan_to_json(p, &e);
        check(a != NULL, "to_json");
        prism_plan *q;
        check(prism_plan_from_json(a, strlen(a), &q, &e) == PRISM_PLAN_OK,
              "the canonical JSON is refused");
        char *b = prism_plan_to_json(q, &e);
        check(b && !strcmp(a, b), "the canonical JSON changes on a round trip");
        free(a);
        free(b);
        prism_plan_destroy(q);
        check_optimized(p);
    }
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (root)
        check_builder(root, st, &e, p);
    json_decref(root);
    prism_plan_destroy(p);
    return 0;
}
