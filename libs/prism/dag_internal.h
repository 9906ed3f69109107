/* Accelerated DAGs on the driver's side (include/prism/dag.h): the graph as
 * the user builds it (dag_graph.c) and the compiled DAG (dag.c). */
#ifndef PRISM_DAG_INTERNAL_H
#define PRISM_DAG_INTERNAL_H

#include "prism/dag.h"
#include "prism_channel.h"
#include "prism_internal.h"

/* A bind of several returns is a DAG_BIND node the user never sees, and
 * one DAG_RETURN node per return, taking it as its one argument. A
 * DAG_CONST node has no channel: its value goes to the actors whose binds
 * take it with their start call. A DAG_ITEM node takes the input: the
 * driver writes that item of each execution's input into its channel. */
enum dag_node_kind { DAG_INPUT, DAG_BIND, DAG_MULTI, DAG_RETURN, DAG_CONST, DAG_ITEM };

struct prism_dag_node {
    size_t index;       /* in its graph: nodes only take nodes of lower index */
    int kind;           /* enum dag_node_kind */
    prism_actor *actor; /* DAG_BIND: borrowed from the user until compile */
    char *method;
    size_t *args; /* indexes of the nodes it takes (DAG_BIND, DAG_MULTI, DAG_RETURN) */
    size_t nargs;
    size_t nreturns;    /* DAG_BIND: 1, or its DAG_RETURN nodes */
    size_t ret;         /* DAG_RETURN: which return of its bind; DAG_ITEM: which item */
    char *key;          /* DAG_ITEM by key (prism_dag_input_key): the key, else NULL */
    prism_value *value; /* DAG_CONST: its own copy */
};

struct prism_dag {
    prism_dag_node **nodes;
    size_t n, cap;
};

/* Every node leads to the last one (the output), and the graph has an input
 * that does too. */
prism_status prism__dag_check(const prism_dag *dag);

/* A handle of its own on an actor (the compiled DAG outlives the user's). */
prism_actor *prism__actor_dup(const prism_actor *a);

#endif
