/* core/net/client: libcurl resolved at first use. See curl_api.h. */
#include "net/client/curl_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

/* The soname of libcurl's OpenSSL build (Debian's libcurl4, which libcurl4-openssl-dev builds
 * against; the GnuTLS and NSS builds are libcurl-gnutls.so.4 and libcurl-nss.so.4). Since it
 * is dlopen'ed, packages must list libcurl4 as a runtime dependency themselves. */
#define CURL_SONAME "libcurl.so.4"

/* The module's only globals: loading is process-wide, like libcurl's own state. */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static struct curl_api api;
static int loaded;
static char load_error[320];

static const struct {
    const char *name;
    size_t offset;
} symbols[] = {
#define SYM(member)                                                                                \
    {                                                                                              \
        "curl_" #member, offsetof(struct curl_api, member)                                         \
    }
    SYM(global_init),
    SYM(global_cleanup),
    SYM(easy_init),
    SYM(easy_cleanup),
    SYM(easy_setopt),
    SYM(easy_getinfo),
    SYM(easy_perform),
    SYM(easy_strerror),
    SYM(free),
    SYM(multi_init),
    SYM(multi_cleanup),
    SYM(multi_add_handle),
    SYM(multi_remove_handle),
    SYM(multi_assign),
    SYM(multi_info_read),
    SYM(multi_setopt),
    SYM(multi_socket_action),
    SYM(slist_append),
    SYM(slist_free_all),
    SYM(url),
    SYM(url_cleanup),
    SYM(url_set),
    SYM(url_get),
    SYM(version_info),
#undef SYM
};

static void load(void)
{
    void *h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load %s (%s)", CURL_SONAME,
                 e != NULL ? e : "unknown error");
        return;
    }
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *fn = dlsym(h, symbols[i].name);
        if (fn == NULL) {
            snprintf(load_error, sizeof load_error, "%s has no %s: libcurl 7.68 or newer is needed",
                     CURL_SONAME, symbols[i].name);
            return; /* h stays open: harmless, and dlclose could run curl's destructors */
        }
        /* A function pointer stored through its object representation, as dlsym requires. */
        *(void **)((char *)&api + symbols[i].offset) = fn;
    }
    /* The core sets options by the headers' version (CURLOPT_PROTOCOLS_STR, QUICK_EXIT ...):
     * an older library would refuse them on every request, so it is refused here, once. */
    const curl_version_info_data *v = api.version_info(CURLVERSION_NOW);
    if (v == NULL || v->version_num < LIBCURL_VERSION_NUM) {
        snprintf(load_error, sizeof load_error,
                 "%s is libcurl %s, older than the %s remora was built with", CURL_SONAME,
                 v != NULL && v->version != NULL ? v->version : "?", LIBCURL_VERSION);
        return;
    }
    loaded = 1;
}

const struct curl_api *curl_api_get(const char **why)
{
    pthread_once(&load_once, load);
    if (!loaded) {
        if (why != NULL)
            *why = load_error;
        return NULL;
    }
    return &api;
}
