#include "prism_net.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void prism_advertised_host(const char *bind_host, char *out, size_t n)
{
    char name[256];
    const char *host = bind_host;
    if ((!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) &&
        gethostname(name, sizeof name - 1) == 0) {
        name[sizeof name - 1] = '\0';
        host = name;
    }
    snprintf(out, n, strchr(host, ':') ? "[%s]" : "%s", host);
}

void prism_local_host(const char *bind_host, char *out, size_t n)
{
    const char *host = !strcmp(bind_host, "0.0.0.0") ? "127.0.0.1"
                       : !strcmp(bind_host, "::")    ? "::1"
                                                     : bind_host;
    snprintf(out, n, strchr(host, ':') ? "[%s]" : "%s", host);
}
