/* Compiled DAGs without a cluster: the graph's checks (include/prism/dag.h)
 * and the records on the channels (libs/prism/dag_record.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <pthread.h>

#include "codec.h"
#include "dag_edge.h"
#include "dag_internal.h"
#include "dag_record.h"
#include "dag_rendezvous.h"
#include "prism_buf.h"
#include "prism_wire.h"
#include "task_ctx.h"

/* The graph only keeps actor pointers until compile: any non-NULL one does here. */
static prism_actor *const actor = (prism_actor *)&actor;

static void test_pipeline_and_fanout_check(void **state)
{
    prism_dag *g;
    prism_dag_node *n, *in, *parts[2], *all;
    assert_int_equal(prism_dag_create(&g), PRISM_OK);
    assert_int_equal(prism_dag_input(g, &n), PRISM_OK);
    in = n;
    for (int i = 0; i < 3; i++) /* out may be the argument: n = a.fwd(n) */
        assert_int_equal(prism_dag_bind(g, actor, "fwd", &n, 1, &n), PRISM_OK);
    assert_int_equal(n->index, 3);
    assert_int_equal(n->args[0], 2);
    assert_int_equal(prism__dag_check(g), PRISM_OK);
    /* A fan-out from the input, gathered: its own branches lead to the output. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(prism_dag_bind(g, actor, "fwd", &in, 1, &parts[i]), PRISM_OK);
    assert_int_equal(prism_dag_multi_output(g, parts, 2, &all), PRISM_OK);
    assert_int_equal(prism__dag_check(g), PRISM_ERR_INVALID); /* the chain leads nowhere now */
    assert_non_null(strstr(prism_last_error(), "does not lead to the output"));
    prism_dag_free(g);
}

static void test_several_returns(void **state)
{
    prism_dag *g;
    prism_dag_node *in, *r[3], *all;
    assert_int_equal(prism_dag_create(&g), PRISM_OK);
    assert_int_equal(prism_dag_input(g, &in), PRISM_OK);
    assert_int_equal(prism_dag_bind_returns(g, actor, "split", &in, 1, 3, r), PRISM_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i]->kind, DAG_RETURN);
        assert_int_equal(r[i]->ret, i);
        assert_int_equal(g->nodes[r[i]->args[0]]->nreturns, 3);
    }
    assert_int_equal(prism_dag_multi_output(g, r, 2, &all), PRISM_OK);
    assert_int_equal(prism__dag_check(g), PRISM_ERR_INVALID); /* return 2 leads nowhere */
    assert_int_equal(prism_dag_bind_returns(g, actor, "split", &in, 1, 0, r), PRISM_ERR_INVALID);
    prism_dag_free(g);
    assert_int_equal(prism_dag_create(&g), PRISM_OK);
    assert_int_equal(prism_dag_input(g, &in), PRISM_OK);
    assert_int_equal(prism_dag_bind_returns(g, actor, "split", &in, 1, 3, r), PRISM_OK);
    assert_int_equal(prism_dag_multi_output(g, r, 3, &all), PRISM_OK);
    assert_int_equal(prism__dag_check(g), PRISM_OK);
    prism_dag_free(g);
}

static void test_refused_graphs(void **state)
{
    prism_dag *g, *other;
    prism_dag_node *in, *in2, *n, *multi;
    assert_int_equal(prism_dag_create(&g), PRISM_OK);
    assert_int_equal(prism_dag_create(&other), PRISM_OK);
    assert_int_equal(prism__dag_check(g), PRISM_ERR_INVALID); /* empty */
    assert_int_equal(prism_dag_input(g, &in), PRISM_OK);
    assert_int_equal(prism__dag_check(g), PRISM_ERR_INVALID); /* output = input */
    assert_int_equal(prism_dag_input(g, &in2), PRISM_ERR_INVALID);
    assert_null(in2);
    assert_int_equal(prism_dag_input(other, &in2), PRISM_OK);
    /* A node of another graph, no arguments, a reserved name. */
    assert_int_equal(prism_dag_bind(g, actor, "fwd", &in2, 1, &n), PRISM_ERR_INVALID);
    assert_null(n);
    assert_int_equal(prism_dag_bind(g, actor, "fwd", &in, 0, &n), PRISM_ERR_INVALID);
    assert_int_equal(prism_dag_bind(g, actor, "__prism_dag_stop", &in, 1, &n), PRISM_ERR_INVALID);
    /* A multi-output node is only ever the output. */
    assert_int_equal(prism_dag_bind(g, actor, "fwd", &in, 1, &n), PRISM_OK);
    assert_int_equal(prism_dag_multi_output(g, &n, 1, &multi), PRISM_OK);
    prism_dag_node *after;
    assert_int_equal(prism_dag_bind(g, actor, "fwd", &multi, 1, &after), PRISM_ERR_INVALID);
    assert_int_equal(prism__dag_check(g), PRISM_OK);
    /* A graph without an input cannot be built: a bind takes nodes of its own graph. */
    prism_dag *noin;
    prism_dag_node *x;
    assert_int_equal(prism_dag_create(&noin), PRISM_OK);
    assert_int_equal(prism_dag_bind(noin, actor, "fwd", &in, 1, &x), PRISM_ERR_INVALID);
    prism_dag_free(noin);
    prism_dag_free(other);
    prism_dag_free(g);
}

static void test_value_records(void **state)
{
    uint8_t buf[256];
    int64_t shape[] = {2, 2};
    float data[] = {1, 2, 3, 4};
    prism_value *t = prism_value_tensor(PRISM_F32, 2, shape, data);
    size_t n = prism__dag_put_value(buf, sizeof buf, t);
    assert_true(n > DAG_REC_HEAD);
    assert_int_equal(prism__dag_tag(buf, n), DAG_REC_VALUE);
    prism_value *copy = prism__dag_get_value(buf, n, false);
    prism_value *in_place = prism__dag_get_value(buf, n, true);
    assert_memory_equal(prism_value_data(copy, NULL), data, sizeof data);
    const uint8_t *p = prism_value_data(in_place, NULL);
    assert_true(p > buf && p < buf + n); /* read where it lies */
    assert_int_equal((uintptr_t)(p - buf) % 16, 0);
    prism_value_free(copy);
    prism_value_free(in_place);
    /* Viewed: the same tensor in place, nothing allocated; null too; not
     * JSON (its text is allocated), a record cut short, or another tag. */
    prism_value view;
    assert_true(prism__dag_view_value(buf, n, &view));
    assert_int_equal(prism_value_kind_of(&view), PRISM_VALUE_TENSOR);
    assert_ptr_equal(prism_value_data(&view, NULL), p);
    assert_int_equal(prism_value_dtype(&view), PRISM_F32);
    assert_int_equal(prism_value_ndim(&view), 2);
    assert_int_equal(prism_value_shape(&view)[1], 2);
    assert_false(prism__dag_view_value(buf, n - 1, &view));
    prism_value *other = prism_value_null();
    size_t m = prism__dag_put_value(buf, sizeof buf, other);
    assert_true(prism__dag_view_value(buf, m, &view));
    assert_int_equal(prism_value_kind_of(&view), PRISM_VALUE_NULL);
    prism_value_free(other);
    other = prism_value_json("[1]");
    m = prism__dag_put_value(buf, sizeof buf, other);
    assert_false(prism__dag_view_value(buf, m, &view));
    prism_value_free(other);
    m = prism__dag_put_error(buf, sizeof buf, DAG_REC_ERROR, "A.f", "no");
    assert_false(prism__dag_view_value(buf, m, &view));
    /* Too large for the slot: 0, nothing claimed. */
    assert_int_equal(prism__dag_put_value(buf, 40, t), 0);
    prism_value_free(t);
    /* References do not travel on edges. */
    prism_object_id id = {{0}};
    prism_ref *r = prism__ref_new(NULL, &id, "owner:x");
    prism_value *list = prism_value_list();
    prism_value_list_append(list, prism_value_ref(r));
    assert_true(prism__dag_has_ref(list));
    assert_int_equal(prism__dag_put_value(buf, sizeof buf, list), 0);
    prism_value_free(list);
    prism_ref_release(r);
}

/* A bytes value's record is written and read without the codec's general
 * path (the hop's fast path): the same bytes as the codec writes, and the
 * same answers as its reader, for good records and damaged ones. */
static void test_bytes_records(void **state)
{
    for (size_t len = 0; len <= 64; len += 7) {
        uint8_t data[64], buf[128], ref[128];
        for (size_t i = 0; i < len; i++)
            data[i] = (uint8_t)(i * 37 + len);
        prism_value *v = prism_value_bytes(data, len);
        size_t n = prism__dag_put_value(buf, sizeof buf, v);
        assert_int_equal(n, DAG_REC_HEAD + 9 + len);
        memset(ref, 0, DAG_REC_HEAD);
        prism_writer w = {.out = ref + DAG_REC_HEAD, .cap = sizeof ref - DAG_REC_HEAD};
        pw_value(&w, v, NULL);
        assert_int_equal(DAG_REC_HEAD + w.pos, n);
        assert_memory_equal(buf, ref, n);
        /* One byte short of room: 0 (the caller then goes through the store). */
        assert_int_equal(prism__dag_put_value(buf, n - 1, v), 0);
        /* A record whose bytes a method writes in place: the same bytes. */
        uint8_t room[128];
        assert_int_equal(prism__dag_bytes_size(len), n);
        assert_null(prism__dag_bytes_room(room, n - 1, len));
        uint8_t *at = prism__dag_bytes_room(room, sizeof room, len);
        assert_ptr_equal(at, room + DAG_REC_HEAD + 9);
        memcpy(at, data, len);
        assert_memory_equal(room, buf, n);
        prism_value *copy = prism__dag_get_value(buf, n, false);
        size_t got = 99;
        assert_non_null(copy);
        assert_int_equal(prism_value_kind_of(copy), PRISM_VALUE_BYTES);
        assert_true(prism_value_data(copy, &got) != NULL || len == 0);
        assert_int_equal(got, len);
        if (len)
            assert_memory_equal(prism_value_data(copy, NULL), data, len);
        prism_value view;
        assert_true(prism__dag_view_value(buf, n, &view));
        assert_ptr_equal(prism_value_data(&view, &got), buf + DAG_REC_HEAD + 9);
        assert_int_equal(got, len);
        /* Damaged: cut short, or a length that is not the record's. */
        assert_null(prism__dag_get_value(buf, n - 1, false));
        assert_false(prism__dag_view_value(buf, n - 1, &view));
        buf[DAG_REC_HEAD + 1] ^= 1;
        assert_null(prism__dag_get_value(buf, n, false));
        assert_null(prism__dag_get_value(buf, n, true));
        assert_false(prism__dag_view_value(buf, n, &view));
        prism_value_free(copy);
        prism_value_free(v);
    }
}

/* prism_task_return_bytes where the runtime has no place of its own: a
 * bytes value per return, each asked for once; one the function replaced
 * is freed when the call settles (the leak checker tells). */
static void test_return_bytes_on_heap(void **state)
{
    prism_value *rets[2] = {NULL, NULL};
    prism_task_ctx ctx = {.returns = rets, .nreturns = 2};
    uint8_t *a = prism_task_return_bytes(&ctx, 0, 600);
    assert_non_null(a);
    memset(a, 7, 600);
    assert_null(prism_task_return_bytes(&ctx, 0, 8));
    assert_int_equal(prism_last_status(), PRISM_ERR_INVALID);
    assert_null(prism_task_return_bytes(&ctx, 2, 8));
    assert_int_equal(prism_last_status(), PRISM_ERR_INVALID);
    assert_non_null(prism_task_return_bytes(&ctx, 1, 0));
    rets[1] = prism_value_json("1"); /* the function's own value instead */
    prism__task_ctx_settle(&ctx);
    assert_null(ctx.made);
    size_t len;
    const uint8_t *got = prism_value_data(rets[0], &len);
    assert_int_equal(prism_value_kind_of(rets[0]), PRISM_VALUE_BYTES);
    assert_int_equal(len, 600);
    assert_true(got[0] == 7 && got[599] == 7);
    assert_int_equal(prism_value_kind_of(rets[1]), PRISM_VALUE_JSON);
    prism_task_ctx none = {0}; /* a constructor's: no returns */
    assert_null(prism_task_return_bytes(&none, 0, 8));
    prism_value_free(rets[0]);
    prism_value_free(rets[1]);
    (void)state;
}

static void test_error_records(void **state)
{
    uint8_t buf[64];
    char *name, *msg;
    size_t n = prism__dag_put_error(buf, sizeof buf, DAG_REC_ERROR, "Counter.add",
                                    "add takes one JSON integer, and this message is too long");
    assert_int_equal(n, sizeof buf); /* the message is cut to fit */
    assert_int_equal(prism__dag_tag(buf, n), DAG_REC_ERROR);
    assert_null(prism__dag_get_value(buf, n, false));
    assert_int_equal(prism__dag_get_error(buf, n, &name, &msg), 0);
    assert_string_equal(name, "Counter.add");
    assert_int_equal(strncmp(msg, "add takes", 9), 0);
    free(name);
    free(msg);
    /* Malformed: short, an unknown tag, a body cut short. */
    assert_int_equal(prism__dag_tag(buf, 8), -1);
    buf[0] = 7;
    assert_int_equal(prism__dag_tag(buf, n), -1);
    buf[0] = DAG_REC_DIED;
    assert_int_equal(prism__dag_get_error(buf, DAG_REC_HEAD + 6, &name, &msg), -1);
    assert_null(name);
}

/* A value too large for its slot travels as a reference record; the writer
 * lets a slot's reference go only when the slot is written again. */
/* Constants: copied into their node, taken by binds (not alone), never the
 * output or an output item, plain values only. */
static void test_constants(void **state)
{
    prism_dag *g;
    prism_dag_node *in, *k, *k2, *n, *multi, *x;
    assert_int_equal(prism_dag_create(&g), PRISM_OK);
    assert_int_equal(prism_dag_input(g, &in), PRISM_OK);
    prism_value *v = prism_value_json("100");
    assert_int_equal(prism_dag_constant(g, v, &k), PRISM_OK);
    prism_value_free(v); /* the node has its own copy */
    assert_int_equal(k->kind, DAG_CONST);
    assert_string_equal(prism_value_json_text(k->value), "100");
    assert_int_equal(prism__dag_check(g), PRISM_ERR_INVALID); /* the output is a constant */
    assert_non_null(strstr(prism_last_error(), "constant"));
    /* A bind of constants only has nothing to wait for. */
    prism_dag_node *two[2] = {k, k};
    assert_int_equal(prism_dag_bind(g, actor, "fwd", two, 2, &x), PRISM_ERR_INVALID);
    assert_null(x);
    assert_non_null(strstr(prism_last_error(), "not a constant"));
    prism_dag_node *args[3] = {k, in, k};
    assert_int_equal(prism_dag_bind(g, actor, "fwd", args, 3, &n), PRISM_OK);
    assert_int_equal(n->nargs, 3);
    assert_int_equal(n->args[0], k->index);
    assert_int_equal(n->args[1], in->index);
    assert_int_equal(prism__dag_check(g), PRISM_OK);
    /* Never an output item. */
    prism_dag_node *items[2] = {n, k};
    assert_int_equal(prism_dag_multi_output(g, items, 2, &multi), PRISM_ERR_INVALID);
    assert_null(multi);
    /* One that no bind takes leads nowhere. */
    v = prism_value_bytes("abc", 3);
    assert_int_equal(prism_dag_constant(g, v, &k2), PRISM_OK);
    prism_value_free(v);
    prism_dag_node *args2[2] = {n, k2};
    assert_int_equal(prism_dag_bind(g, actor, "fwd", args2, 2, &x), PRISM_OK);
    assert_int_equal(prism__dag_check(g), PRISM_OK);
    assert_int_equal(prism_dag_constant(g, (v = prism_value_json("1")), &k2), PRISM_OK);
    prism_value_free(v);
    assert_int_equal(prism_dag_bind(g, actor, "fwd", &x, 1, &x), PRISM_OK);
    assert_int_equal(prism__dag_check(g), PRISM_ERR_INVALID);
    assert_non_null(strstr(prism_last_error(), "does not lead to the output"));
    /* Plain values only; nothing made when refused. */
    size_t nodes = g->n;
    prism_object_id id = {{9, 9, 9}};
    prism_ref *r = prism__ref_new(NULL, &id, "owner:x");
    prism_value *list = prism_value_list(), *ref = prism_value_ref(r);
    assert_int_equal(prism_value_list_append(list, ref), PRISM_OK);
    assert_int_equal(prism_dag_constant(g, list, &x), PRISM_ERR_INVALID);
    assert_null(x);
    assert_non_null(strstr(prism_last_error(), "object references"));
    prism_value_free(list);
    prism_ref_release(r);
    static float fake[4];
    int64_t four = 4;
    prism_value *dev = prism_value_device_tensor(0, PRISM_F32, 1, &four, fake, NULL, NULL);
    assert_int_equal(prism_dag_constant(g, dev, &x), PRISM_ERR_INVALID);
    assert_non_null(strstr(prism_last_error(), "device memory"));
    prism_value_free(dev);
    assert_int_equal(prism_dag_constant(g, NULL, &x), PRISM_ERR_INVALID);
    assert_int_equal(g->n, nodes);
    prism_dag_free(g);
}

/* Items of the input: nodes that take the input, refused as the output or
 * an output item, and for anything but the graph's input. */
static void test_input_items(void **state)
{
    prism_dag *g, *other;
    prism_dag_node *in, *in2, *x, *y, *n, *multi, *bad;
    assert_int_equal(prism_dag_create(&g), PRISM_OK);
    assert_int_equal(prism_dag_create(&other), PRISM_OK);
    assert_int_equal(prism_dag_input(g, &in), PRISM_OK);
    assert_int_equal(prism_dag_input(other, &in2), PRISM_OK);
    assert_int_equal(prism_dag_input_item(g, in, 0, &x), PRISM_OK);
    assert_int_equal(x->kind, DAG_ITEM);
    assert_int_equal(x->ret, 0);
    assert_int_equal(x->args[0], in->index);
    assert_int_equal(prism__dag_check(g), PRISM_ERR_INVALID); /* the output is the input's */
    assert_non_null(strstr(prism_last_error(), "its input"));
    assert_int_equal(prism_dag_input_item(g, in, 1023, &y), PRISM_OK);
    assert_int_equal(prism_dag_input_item(g, in, 1024, &bad), PRISM_ERR_INVALID);
    assert_null(bad);
    assert_int_equal(prism_dag_input_item(g, in2, 0, &bad),
                     PRISM_ERR_INVALID);                                      /* another graph's */
    assert_int_equal(prism_dag_input_item(g, x, 0, &bad), PRISM_ERR_INVALID); /* not an input */
    prism_dag_node *xy[2] = {x, y};
    assert_int_equal(prism_dag_bind(g, actor, "fwd", xy, 2, &n), PRISM_OK);
    assert_int_equal(prism__dag_check(g), PRISM_OK);
    prism_dag_node *items[2] = {n, y};
    assert_int_equal(prism_dag_multi_output(g, items, 2, &multi), PRISM_ERR_INVALID);
    assert_null(multi);
    prism_dag_free(other);
    prism_dag_free(g);
}

static void test_ref_records(void **state)
{
    uint8_t buf[128];
    prism_object_id id = {{7, 7, 7}};
    prism_ref *r = prism__ref_new(NULL, &id, "owner:x");
    size_t n = prism__dag_put_ref(buf, sizeof buf, r, NULL);
    assert_true(n > DAG_REC_HEAD);
    assert_int_equal(prism__dag_tag(buf, n), DAG_REC_REF);
    assert_true(prism__dag_is_value(buf, n));
    assert_null(prism__dag_get_value(buf, n, false)); /* not a value record */
    prism_ref *back = prism__dag_get_ref(buf, n);
    assert_non_null(back);
    assert_string_equal(prism_ref_id(back), prism_ref_id(r));
    prism_ref_release(back);
    assert_null(prism__dag_get_ref(buf, n - 1)); /* cut short */
    assert_int_equal(prism__dag_put_ref(buf, DAG_REC_HEAD + 4, r, NULL), 0);

    dag_held h;
    assert_int_equal(prism__dag_held_init(&h, 2), 0);
    for (int k = 0; k < 5; k++) {
        prism__dag_held_begin(&h);
        prism__dag_held_end(&h, k % 2 ? NULL : prism_ref_dup(r));
        assert_int_equal(h.slot, (k + 1) % 2);
    }
    /* writes 3 (NULL) and 4 (a reference) are held, in slots 1 and 0 */
    assert_null(h.refs[1]);
    assert_non_null(h.refs[0]);
    prism__dag_held_free(&h);
    prism_ref_release(r);
}

static int connect_rdv(const char *id)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "prism-dag-%s", id);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a,
                             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)),
                     0);
    return fd;
}

/* Whether the rendezvous closed `fd` without sending anything. */
static bool closed_empty(int fd)
{
    char c;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return recv(fd, &c, 1, 0) == 0;
}

/* Peers are served side by side: a silent one and a flood of them hold up
 * nobody who sends a nonce at once; a peer that closes early is dropped. */
static void test_rendezvous_peers(void **state)
{
    const char *id = "0123456789abcdef0123456789abcdef";
    dag_rdv *r;
    char nonce[DAG_NONCE_HEX];
    assert_int_equal(prism__dag_rdv_listen(&r, id), PRISM_OK);
    assert_int_equal(prism__dag_rdv_next(r, 10, nonce), -1); /* nobody yet */
    int silent = connect_rdv(id), half = connect_rdv(id), gone = connect_rdv(id);
    assert_int_equal(send(half, "0123456789", 10, 0), 10);
    close(gone);
    int worker = connect_rdv(id);
    assert_int_equal(send(worker, "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb", DAG_NONCE_HEX, 0),
                     DAG_NONCE_HEX);
    int fd = prism__dag_rdv_next(r, 1000, nonce);
    assert_true(fd >= 0);
    assert_memory_equal(nonce, "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb", DAG_NONCE_HEX);
    close(fd);
    assert_true(closed_empty(worker)); /* the caller closed it: nothing came */
    close(worker);
    /* The half nonce completes later. */
    assert_int_equal(send(half, "0123456789012345678901", 22, 0), 22);
    fd = prism__dag_rdv_next(r, 1000, nonce);
    assert_true(fd >= 0);
    assert_memory_equal(nonce, "01234567890123456789012345678901", DAG_NONCE_HEX);
    close(fd);
    close(half);
    /* More silent peers than places: the oldest go, a nonce still gets in. */
    int flood[20];
    for (int i = 0; i < 20; i++)
        flood[i] = connect_rdv(id);
    worker = connect_rdv(id);
    assert_int_equal(send(worker, "cccccccccccccccccccccccccccccccc", DAG_NONCE_HEX, 0),
                     DAG_NONCE_HEX);
    fd = prism__dag_rdv_next(r, 1000, nonce);
    assert_true(fd >= 0);
    assert_memory_equal(nonce, "cccccccccccccccccccccccccccccccc", DAG_NONCE_HEX);
    close(fd);
    close(worker);
    assert_true(closed_empty(silent)); /* evicted, the first accepted */
    assert_true(closed_empty(flood[0]));
    /* The silent ones left are closed when their 2 s are up. */
    assert_int_equal(prism__dag_rdv_next(r, 2200, nonce), -1);
    assert_true(closed_empty(flood[19]));
    prism__dag_rdv_close(r);
    for (int i = 0; i < 20; i++) {
        assert_true(closed_empty(flood[i]));
        close(flood[i]);
    }
    close(silent);
}

typedef struct edge_reader {
    int listen_fd;
    const char *secret;
    int fd;
} edge_reader;

static void *accept_edge(void *arg)
{
    edge_reader *r = arg;
    r->fd = prism__dag_edge_accept(r->listen_fd, r->secret, 10000);
    return NULL;
}

/* The same with less time than one silent stranger's turn. */
static void *accept_edge_soon(void *arg)
{
    edge_reader *r = arg;
    r->fd = prism__dag_edge_accept(r->listen_fd, r->secret, 1500);
    return NULL;
}

/* A raw TCP connection to `addr` (127.0.0.1:port). */
static int raw_connect(const char *addr)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    a.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Everything the reader sends a peer until it closes the connection. */
static size_t drain(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;
    while (got < cap && (n = recv(fd, buf + got, cap - got, 0)) > 0)
        got += (size_t)n;
    return got;
}

/* Strangers that connect first and say nothing do not hold the writer
 * back: it proves itself beside them, well within one stranger's turn
 * (2 s), here the whole accept's timeout; 20 of them push the oldest out. */
static void test_edge_strangers_first(void **state)
{
    (void)state;
    char secret[DAG_EDGE_SECRET_HEX + 1], addr[300];
    prism__dag_edge_secret(secret);
    int lfd = prism__dag_edge_listen("127.0.0.1", addr, sizeof addr);
    assert_true(lfd >= 0);
    edge_reader r = {.listen_fd = lfd, .secret = secret, .fd = -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, accept_edge_soon, &r), 0);
    int silent[20];
    uint8_t buf[256];
    for (int i = 0; i < 20; i++) { /* each challenged, in turn */
        silent[i] = raw_connect(addr);
        assert_int_equal(recv(silent[i], buf, 4 + 1 + 1 + WIRE_NONCE_BYTES, MSG_WAITALL),
                         4 + 1 + 1 + WIRE_NONCE_BYTES);
    }
    int w = prism__dag_edge_connect(addr, secret, 0, 5000);
    assert_true(w >= 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(r.fd >= 0);
    /* the first four were pushed out: the end, nothing after the challenge */
    for (int i = 0; i < 4; i++)
        assert_int_equal(drain(silent[i], buf, sizeof buf), 0);
    for (int i = 0; i < 20; i++)
        close(silent[i]);
    close(w);
    close(r.fd);
    close(lfd);
}

/* A cross-node edge's connection: peers without the secret (a forged AUTH,
 * a wrong secret) get the challenge and nothing else, then the writer that
 * holds it connects and frames flow over the socket channel. */
static void test_edge_connection(void **state)
{
    char secret[DAG_EDGE_SECRET_HEX + 1], other[DAG_EDGE_SECRET_HEX + 1], addr[300];
    prism__dag_edge_secret(secret);
    prism__dag_edge_secret(other);
    assert_int_equal(strlen(secret), DAG_EDGE_SECRET_HEX);
    assert_string_not_equal(secret, other);
    edge_reader r = {.listen_fd = prism__dag_edge_listen("127.0.0.1", addr, sizeof addr),
                     .secret = secret,
                     .fd = -1};
    assert_true(r.listen_fd >= 0);
    assert_non_null(strstr(addr, "127.0.0.1:"));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, accept_edge, &r), 0);

    /* A forged AUTH (right shape, no secret behind it): the challenge, then the end. */
    int fd = raw_connect(addr);
    uint8_t buf[4096];
    uint8_t hdr[4];
    assert_int_equal(recv(fd, hdr, 4, MSG_WAITALL), 4);
    size_t size = wire_frame_size(hdr);
    assert_int_equal(size, 4 + 1 + 1 + WIRE_NONCE_BYTES); /* type, version, nonce */
    assert_int_equal(recv(fd, buf, size - 4, MSG_WAITALL), (ssize_t)(size - 4));
    assert_int_equal(buf[0], WIRE_CHALLENGE);
    prism_buf forged;
    prism_buf_init(&forged, 1024);
    size_t start = forged.len;
    wire_begin(&forged, WIRE_AUTH);
    uint8_t junk[2 * WIRE_NONCE_BYTES] = {1, 2, 3};
    prism_buf_append(&forged, junk, sizeof junk);
    wire_end(&forged, start);
    assert_int_equal(send(fd, forged.data, forged.len, MSG_NOSIGNAL), (ssize_t)forged.len);
    prism_buf_free(&forged);
    assert_int_equal(drain(fd, buf, sizeof buf), 0);
    close(fd);

    /* A writer with another secret is refused. */
    assert_int_equal(prism__dag_edge_connect(addr, other, 0, 5000), -1);

    /* The writer with the secret gets through; values flow. */
    int w = prism__dag_edge_connect(addr, secret, 4 * 1024, 5000);
    assert_true(w >= 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(r.fd >= 0);
    close(r.listen_fd); /* one connection per edge: nobody else gets in */
    assert_int_equal(prism__dag_edge_connect(addr, secret, 0, 2000), -1);

    prism_chan_writer *cw;
    prism_chan_reader *cr;
    prism_chan_wait wait = {0};
    assert_int_equal(prism_chan_writer_open_socket(&cw, w, 1024, &wait), PRISM_CHAN_OK);
    assert_int_equal(prism_chan_reader_open_socket(&cr, r.fd, 1024, &wait), PRISM_CHAN_OK);
    for (int i = 0; i < 100; i++) {
        char v[32];
        int n = snprintf(v, sizeof v, "value %d", i);
        prism_chan_status ws = prism_chan_write(cw, v, (size_t)n, 5000);
        assert_true(ws == PRISM_CHAN_OK || ws == PRISM_CHAN_QUEUED);
        const void *got;
        size_t len;
        assert_int_equal(prism_chan_begin_read(cr, &got, &len, 5000), PRISM_CHAN_OK);
        assert_int_equal(len, (size_t)n);
        assert_memory_equal(got, v, len);
        prism_chan_end_read(cr);
    }
    assert_int_equal(prism_chan_writer_close(cw, 5000), PRISM_CHAN_OK);
    const void *got;
    size_t len;
    assert_int_equal(prism_chan_begin_read(cr, &got, &len, 5000), PRISM_CHAN_CLOSED);
    prism_chan_writer_destroy(cw);
    prism_chan_reader_destroy(cr);
    close(w);
    close(r.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_and_fanout_check),
        cmocka_unit_test(test_several_returns),
        cmocka_unit_test(test_refused_graphs),
        cmocka_unit_test(test_constants),
        cmocka_unit_test(test_input_items),
        cmocka_unit_test(test_value_records),
        cmocka_unit_test(test_bytes_records),
        cmocka_unit_test(test_return_bytes_on_heap),
        cmocka_unit_test(test_error_records),
        cmocka_unit_test(test_ref_records),
        cmocka_unit_test(test_rendezvous_peers),
        cmocka_unit_test(test_edge_connection),
        cmocka_unit_test(test_edge_strangers_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
