/* Where copies of large objects are: the stores that announced one on
 * prism.object.added (with their URL), forgotten on prism.object.removed. A
 * pull asks here for the stores that may serve it besides the source it was
 * given, so that a value read on many nodes is copied from the copies made
 * before, not every time from its first store (docs/objectstore.md,
 * "Transfers"). Only objects of at least OS_COPIES_MIN_BYTES are followed,
 * at most OS_COPIES_MAX of them (the least recently announced go first):
 * for small ones one source is no bottleneck. */
#ifndef OS_COPIES_H
#define OS_COPIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prism_bus.h"
#include "prism_id.h"

#define OS_COPIES_MIN_BYTES (1u << 20)
#define OS_COPIES_MAX 4096
#define OS_COPIES_HOLDERS 16 /* stores remembered per object */
#define OS_COPIES_URL_MAX 256

typedef struct os_copies os_copies;

/* Follows the events on `bus` (none when NULL); `self` is this store's URL,
 * never answered as a holder. Returns 0, or -1 (destroy it then too). */
int os_copies_create(os_copies **out, prism_bus *bus);
void os_copies_set_self(os_copies *c, const char *self);
/* Up to `max` URLs of stores that announced a copy of `id`, the most recent
 * first. Returns how many. */
size_t os_copies_holders(os_copies *c, const prism_object_id *id, char urls[][OS_COPIES_URL_MAX],
                         size_t max);
/* Records a copy directly (what an event does). */
void os_copies_add(os_copies *c, const prism_object_id *id, const char *url);
/* After the bus is destroyed. NULL is a no-op. */
void os_copies_destroy(os_copies *c);

#endif
