/* Building a DAG (include/prism/dag.h): nodes that name earlier nodes, so the
 * graph is acyclic by construction. Compiling it is dag.c's. */
#include <stdlib.h>
#include <string.h>

#include "dag_internal.h"
#include "dag_record.h"

/* Its size is ABI (docs/api-c.md#options-structs). */
_Static_assert(sizeof(prism_dag_options) == 88, "prism_dag_options changed size");

void prism_dag_options_init(prism_dag_options *opts)
{
    if (opts)
        *opts = (prism_dag_options)PRISM_DAG_OPTIONS_INIT;
}

prism_status prism_dag_create(prism_dag **out)
{
    if (!out)
        return prism__fail(PRISM_ERR_INVALID, "dag_create needs an out-pointer");
    *out = calloc(1, sizeof **out);
    return *out ? PRISM_OK : prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
}

static void node_free(prism_dag_node *n)
{
    if (!n)
        return;
    free(n->method);
    free(n->key);
    free(n->args);
    prism_value_free(n->value);
    free(n);
}

void prism_dag_free(prism_dag *dag)
{
    if (!dag)
        return;
    for (size_t i = 0; i < dag->n; i++)
        node_free(dag->nodes[i]);
    free(dag->nodes);
    free(dag);
}

/* Whether `node` is one of `dag`'s (a pointer from another graph is refused). */
static bool owns(const prism_dag *dag, const prism_dag_node *node)
{
    return node && node->index < dag->n && dag->nodes[node->index] == node;
}

/* A new node taking `args`; NULL (with the error set) when they are not fit. */
static prism_dag_node *add_node(prism_dag *dag, int kind, prism_dag_node *const *args, size_t nargs)
{
    for (size_t i = 0; i < nargs; i++) {
        if (!owns(dag, args[i])) {
            prism__fail(PRISM_ERR_INVALID, "argument %zu is not a node of this graph", i);
            return NULL;
        }
        if (args[i]->kind == DAG_MULTI) {
            prism__fail(PRISM_ERR_INVALID, "a multi-output node can only be the output");
            return NULL;
        }
        if ((args[i]->kind == DAG_CONST || args[i]->kind == DAG_ITEM) && kind == DAG_MULTI) {
            prism__fail(PRISM_ERR_INVALID,
                        "item %zu is a constant or an item of the input: only a bind takes one", i);
            return NULL;
        }
    }
    bool node_arg = nargs == 0 || kind != DAG_BIND;
    for (size_t i = 0; i < nargs; i++)
        node_arg |= args[i]->kind != DAG_CONST;
    if (!node_arg) {
        /* with nothing to wait for, its actor could not tell one execution from the next */
        prism__fail(PRISM_ERR_INVALID, "a bind needs an argument that is not a constant (the "
                                       "input, or a node that leads from it)");
        return NULL;
    }
    if (dag->n == dag->cap) {
        size_t cap = dag->cap ? 2 * dag->cap : 8;
        prism_dag_node **nodes = realloc(dag->nodes, cap * sizeof *nodes);
        if (!nodes)
            goto nomem;
        dag->nodes = nodes;
        dag->cap = cap;
    }
    prism_dag_node *n = calloc(1, sizeof *n);
    if (!n || (nargs && !(n->args = calloc(nargs, sizeof *n->args)))) {
        free(n);
        goto nomem;
    }
    n->index = dag->n;
    n->kind = kind;
    n->nargs = nargs;
    for (size_t i = 0; i < nargs; i++)
        n->args[i] = args[i]->index;
    dag->nodes[dag->n++] = n;
    return n;
nomem:
    prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    return NULL;
}

prism_status prism_dag_input(prism_dag *dag, prism_dag_node **out)
{
    if (out)
        *out = NULL;
    if (!dag || !out)
        return prism__fail(PRISM_ERR_INVALID, "dag_input needs a graph and an out-pointer");
    for (size_t i = 0; i < dag->n; i++)
        if (dag->nodes[i]->kind == DAG_INPUT)
            return prism__fail(PRISM_ERR_INVALID, "the graph has an input already");
    *out = add_node(dag, DAG_INPUT, NULL, 0);
    return *out ? PRISM_OK : prism_last_status();
}

prism_status prism_dag_constant(prism_dag *dag, const prism_value *v, prism_dag_node **out)
{
    if (out)
        *out = NULL;
    if (!dag || !v || !out)
        return prism__fail(PRISM_ERR_INVALID, "dag_constant needs a graph, a value and an "
                                              "out-pointer");
    if (prism__dag_has_ref(v))
        return prism__fail(PRISM_ERR_INVALID, "a DAG's values cannot hold object references");
    if (prism__value_on_device(v))
        return prism__fail(PRISM_ERR_INVALID, "the constant " PRISM__ON_DEVICE);
    prism_value *copy = prism_value_copy(v);
    prism_dag_node *n = copy ? add_node(dag, DAG_CONST, NULL, 0) : NULL;
    if (!n) {
        prism_value_free(copy);
        return copy ? prism_last_status() : prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    n->value = copy;
    *out = n;
    return PRISM_OK;
}

prism_status prism_dag_input_item(prism_dag *dag, prism_dag_node *input, size_t i,
                                  prism_dag_node **out)
{
    if (out)
        *out = NULL;
    if (!dag || !out || !owns(dag, input) || input->kind != DAG_INPUT || i >= 1024)
        return prism__fail(PRISM_ERR_INVALID, "dag_input_item needs a graph, its input node, an "
                                              "item below 1024 and an out-pointer");
    prism_dag_node *n = add_node(dag, DAG_ITEM, &input, 1);
    if (!n)
        return prism_last_status();
    n->ret = i;
    *out = n;
    return PRISM_OK;
}

prism_status prism_dag_input_key(prism_dag *dag, prism_dag_node *input, const char *key,
                                 prism_dag_node **out)
{
    if (out)
        *out = NULL;
    if (!dag || !out || !owns(dag, input) || input->kind != DAG_INPUT || !key || !*key ||
        strlen(key) > 200)
        return prism__fail(PRISM_ERR_INVALID, "dag_input_key needs a graph, its input node, a "
                                              "key of 1-200 bytes and an out-pointer");
    char *k = strdup(key);
    prism_dag_node *n = k ? add_node(dag, DAG_ITEM, &input, 1) : NULL;
    if (!n) {
        free(k);
        return k ? prism_last_status() : prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    }
    n->key = k;
    *out = n;
    return PRISM_OK;
}

/* `out` may point into `args` (n = bind(g, a, "fwd", &n, 1, &n)): it is
 * written last. */
prism_status prism_dag_bind(prism_dag *dag, prism_actor *a, const char *method,
                            prism_dag_node *const *args, size_t nargs, prism_dag_node **out)
{
    prism_status s = PRISM_OK;
    if (!dag || !a || !method || !*method || !out || !args || nargs == 0)
        s = prism__fail(PRISM_ERR_INVALID, "dag_bind needs a graph, an actor, a method, at least "
                                           "one argument node and an out-pointer");
    else if (nargs > 64 || strlen(method) > 200 || !strncmp(method, "__", 2))
        s = prism__fail(PRISM_ERR_INVALID, "dag_bind: at most 64 arguments, and a method name of "
                                           "at most 200 bytes not starting with __");
    char *m = s == PRISM_OK ? strdup(method) : NULL;
    if (s == PRISM_OK && !m)
        s = prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    prism_dag_node *n = m ? add_node(dag, DAG_BIND, args, nargs) : NULL;
    if (m && !n) {
        s = prism_last_status();
        free(m);
    } else if (n) {
        n->actor = a;
        n->method = m;
        n->nreturns = 1;
    }
    if (out)
        *out = n;
    return s;
}

prism_status prism_dag_bind_returns(prism_dag *dag, prism_actor *a, const char *method,
                                    prism_dag_node *const *args, size_t nargs, size_t num_returns,
                                    prism_dag_node **outs)
{
    if (!outs || num_returns < 1 || num_returns > 64)
        return prism__fail(PRISM_ERR_INVALID, "dag_bind_returns: 1-64 returns and an array for "
                                              "their nodes");
    prism_dag_node *b = NULL;
    prism_status s = prism_dag_bind(dag, a, method, args, nargs, &b);
    if (s != PRISM_OK || num_returns == 1) {
        outs[0] = b;
        return s;
    }
    b->nreturns = num_returns;
    for (size_t i = 0; i < num_returns; i++) {
        if (!(outs[i] = add_node(dag, DAG_RETURN, &b, 1)))
            return prism_last_status(); /* the graph no longer compiles: a return leads nowhere */
        outs[i]->ret = i;
    }
    return PRISM_OK;
}

prism_status prism_dag_multi_output(prism_dag *dag, prism_dag_node *const *nodes, size_t n,
                                    prism_dag_node **out)
{
    if (!dag || !nodes || n == 0 || n > 1024 || !out) {
        if (out)
            *out = NULL;
        return prism__fail(PRISM_ERR_INVALID,
                           "dag_multi_output needs a graph, 1-1024 nodes and an out-pointer");
    }
    prism_dag_node *node = add_node(dag, DAG_MULTI, nodes, n);
    *out = node;
    return node ? PRISM_OK : prism_last_status();
}

prism_status prism__dag_check(const prism_dag *dag)
{
    if (!dag || dag->n == 0)
        return prism__fail(PRISM_ERR_INVALID, "the graph is empty");
    if (dag->nodes[dag->n - 1]->kind == DAG_INPUT || dag->nodes[dag->n - 1]->kind == DAG_ITEM)
        return prism__fail(PRISM_ERR_INVALID, "the graph's output is its input: bind a method");
    if (dag->nodes[dag->n - 1]->kind == DAG_CONST)
        return prism__fail(PRISM_ERR_INVALID, "the graph's output is a constant: bind a method");
    /* Walk back from the output: nodes only take earlier ones. */
    bool *used = calloc(dag->n, sizeof *used);
    if (!used)
        return prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
    used[dag->n - 1] = true;
    for (size_t i = dag->n; i-- > 0;)
        for (size_t j = 0; used[i] && j < dag->nodes[i]->nargs; j++)
            used[dag->nodes[i]->args[j]] = true;
    prism_status s = PRISM_OK;
    bool input = false;
    for (size_t i = 0; i < dag->n && s == PRISM_OK; i++) {
        input |= dag->nodes[i]->kind == DAG_INPUT && used[i];
        if (!used[i])
            s = prism__fail(PRISM_ERR_INVALID,
                            "node %zu does not lead to the output (the "
                            "graph's last node)",
                            i);
        else if (dag->nodes[i]->kind == DAG_MULTI && i != dag->n - 1)
            s = prism__fail(PRISM_ERR_INVALID, "a multi-output node can only be the output");
    }
    free(used);
    if (s == PRISM_OK && !input)
        s = prism__fail(PRISM_ERR_INVALID, "the graph has no input (prism_dag_input)");
    return s;
}
