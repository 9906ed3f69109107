/* Which stores this store may pull from (and so send the cluster token to). */
#ifndef OS_PEERS_H
#define OS_PEERS_H

#include <stdbool.h>

#include "prism_bus.h"

typedef struct os_peers os_peers;

/* Knows the stores in `static_list` ("http://h:p,http://h2:p2"; may be NULL)
 * and, with a bus, those that node agents announce. `*out` is set even when
 * subscribing fails (-1): destroy it then too. */
int os_peers_create(os_peers **out, const char *static_list, prism_bus *bus);
/* Whether `url` is a known store now, or becomes one within `wait_ms`. */
bool os_peers_known(os_peers *p, const char *url, int wait_ms);
/* After the bus is destroyed (no event can come). NULL is a no-op. */
void os_peers_destroy(os_peers *p);

#endif
