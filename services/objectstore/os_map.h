/* A hash map from object ID to a pointer: open addressing with linear
 * probing and backward-shift deletion, at most half full. Values must not be
 * NULL (NULL marks an empty slot). Not thread-safe. */
#ifndef OS_MAP_H
#define OS_MAP_H

#include <stddef.h>

#include "prism_id.h"

typedef struct os_map_slot {
    prism_object_id key;
    void *val;
} os_map_slot;

typedef struct os_map {
    os_map_slot *slots; /* NULL until the first put */
    size_t cap;         /* a power of two */
    size_t len;
} os_map;

/* clang-format off */
#define OS_MAP_INIT {NULL, 0, 0}
/* clang-format on */

void os_map_free(os_map *m);
void *os_map_get(const os_map *m, const prism_object_id *key);
/* Sets or replaces. Returns 0, or -1 when out of memory (the map is unchanged). */
int os_map_put(os_map *m, const prism_object_id *key, void *val);
/* Removes the key and returns its value, or NULL when absent. */
void *os_map_del(os_map *m, const prism_object_id *key);
/* Iterates: start with *pos = 0; returns the next value or NULL at the end.
 * The map must not change during an iteration (deleting moves entries:
 * collect the keys first, then delete). */
void *os_map_next(const os_map *m, size_t *pos, prism_object_id *key_out);

#endif
