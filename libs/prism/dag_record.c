#include "dag_record.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

bool prism__dag_has_ref(const prism_value *v)
{
    if (v->kind == PRISM_VALUE_REF)
        return true;
    for (size_t i = 0; v->kind == PRISM_VALUE_LIST && i < v->nitems; i++)
        if (prism__dag_has_ref(v->items[i]))
            return true;
    return false;
}

static void put_head(void *buf, int tag)
{
    memset(buf, 0, DAG_REC_HEAD);
    *(uint8_t *)buf = (uint8_t)tag;
}

size_t prism__dag_put_value(void *buf, size_t cap, const prism_value *v)
{
    if (cap < DAG_REC_HEAD || prism__dag_has_ref(v))
        return 0;
    prism_writer w = {.out = (uint8_t *)buf + DAG_REC_HEAD, .cap = cap - DAG_REC_HEAD};
    pw_value(&w, v, NULL);
    if (w.failed)
        return 0;
    put_head(buf, DAG_REC_VALUE);
    return DAG_REC_HEAD + w.pos;
}

size_t prism__dag_put_error(void *buf, size_t cap, int tag, const char *name, const char *msg)
{
    size_t nlen = name ? strnlen(name, 255) : 0, mlen = msg ? strlen(msg) : 0;
    if (cap < DAG_REC_HEAD + 8 + nlen)
        return 0;
    if (mlen > cap - DAG_REC_HEAD - 8 - nlen)
        mlen = cap - DAG_REC_HEAD - 8 - nlen;
    prism_writer w = {.out = (uint8_t *)buf + DAG_REC_HEAD, .cap = cap - DAG_REC_HEAD};
    pw_u32(&w, (uint32_t)nlen);
    pw_bytes(&w, name, nlen);
    pw_u32(&w, (uint32_t)mlen);
    pw_bytes(&w, msg, mlen);
    put_head(buf, tag);
    return DAG_REC_HEAD + w.pos;
}

int prism__dag_tag(const void *buf, size_t len)
{
    if (len < DAG_REC_HEAD)
        return -1;
    int tag = *(const uint8_t *)buf;
    return tag <= DAG_REC_DIED ? tag : -1;
}

static void no_op(void *ud) { (void)ud; }

prism_value *prism__dag_get_value(const void *buf, size_t len, bool in_place)
{
    if (prism__dag_tag(buf, len) != DAG_REC_VALUE)
        return NULL;
    prism_reader r = {(const uint8_t *)buf + DAG_REC_HEAD, len - DAG_REC_HEAD, 0, NULL, NULL, NULL};
    if (in_place) {
        r.hold = no_op;
        r.release = no_op;
    }
    prism_value *v = pr_value(&r, NULL, NULL);
    if (v && (r.left || prism__dag_has_ref(v))) {
        prism_value_free(v);
        return NULL;
    }
    return v;
}

int prism__dag_get_error(const void *buf, size_t len, char **name, char **msg)
{
    *name = *msg = NULL;
    int tag = prism__dag_tag(buf, len);
    if (tag != DAG_REC_ERROR && tag != DAG_REC_DIED)
        return -1;
    prism_reader r = {(const uint8_t *)buf + DAG_REC_HEAD, len - DAG_REC_HEAD, 0, NULL, NULL, NULL};
    *name = pr_str(&r);
    *msg = pr_str(&r);
    if (*name && *msg)
        return 0;
    free(*name);
    free(*msg);
    *name = *msg = NULL;
    return -1;
}
