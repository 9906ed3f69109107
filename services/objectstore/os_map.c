#include "os_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const prism_object_id *k)
{
    uint64_t a, b;
    uint32_t c;
    memcpy(&a, k->b, 8);
    memcpy(&b, k->b + 8, 8);
    memcpy(&c, k->b + 16, 4);
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ b * 0xC2B2AE3D27D4EB4Full ^ c * 0x165667B19E3779F9ull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}

void os_map_free(os_map *m)
{
    free(m->slots);
    *m = (os_map)OS_MAP_INIT;
}

static size_t find(const os_map *m, const prism_object_id *key)
{
    size_t mask = m->cap - 1;
    size_t i = hash(key) & mask;
    while (m->slots[i].val && memcmp(&m->slots[i].key, key, sizeof *key) != 0)
        i = (i + 1) & mask;
    return i;
}

void *os_map_get(const os_map *m, const prism_object_id *key)
{
    if (!m->len)
        return NULL;
    return m->slots[find(m, key)].val;
}

static int grow(os_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    os_map_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    os_map old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].val)
            m->slots[find(m, &old.slots[i].key)] = old.slots[i];
    free(old.slots);
    return 0;
}

int os_map_put(os_map *m, const prism_object_id *key, void *val)
{
    if ((m->len + 1) * 2 > m->cap && grow(m) != 0)
        return -1;
    size_t i = find(m, key);
    if (!m->slots[i].val) {
        m->slots[i].key = *key;
        m->len++;
    }
    m->slots[i].val = val;
    return 0;
}

void *os_map_del(os_map *m, const prism_object_id *key)
{
    if (!m->len)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = find(m, key);
    void *val = m->slots[i].val;
    if (!val)
        return NULL;
    /* Backward shift: move later entries of the probe run into the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].val)
            break;
        size_t home = hash(&m->slots[j].key) & mask;
        /* The entry at j may move to i when its home is not in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].val = NULL;
    m->len--;
    return val;
}

void *os_map_next(const os_map *m, size_t *pos, prism_object_id *key_out)
{
    for (; *pos < m->cap; (*pos)++)
        if (m->slots[*pos].val) {
            if (key_out)
                *key_out = m->slots[*pos].key;
            return m->slots[(*pos)++].val;
        }
    return NULL;
}
