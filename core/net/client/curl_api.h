/* core/net/client: libcurl, loaded when the first HTTP client is made rather than at startup.
 *
 * Linked the usual way, libcurl brings its whole dependency tree (OpenSSL, GnuTLS, Kerberos,
 * LDAP, libssh2 ...) into every process, about 4.5 MiB of resident pages touched by the
 * dynamic linker alone, in an agent that may never send an HTTP request (DogStatsD to a file).
 * So the core takes curl.h's declarations only and resolves the functions it calls with
 * dlopen("libcurl.so.4") on first use. */
#ifndef REMORA_NET_CLIENT_CURL_API_H
#define REMORA_NET_CLIENT_CURL_API_H

#include <curl/curl.h>

/* The libcurl functions the core calls, with curl.h's own prototypes. */
struct curl_api {
    __typeof__(curl_global_init) *global_init;
    __typeof__(curl_global_cleanup) *global_cleanup;
    __typeof__(curl_easy_init) *easy_init;
    __typeof__(curl_easy_cleanup) *easy_cleanup;
    __typeof__(curl_easy_setopt) *easy_setopt;
    __typeof__(curl_easy_getinfo) *easy_getinfo;
    __typeof__(curl_easy_perform) *easy_perform;
    __typeof__(curl_easy_strerror) *easy_strerror;
    __typeof__(curl_free) *free;
    __typeof__(curl_multi_init) *multi_init;
    __typeof__(curl_multi_cleanup) *multi_cleanup;
    __typeof__(curl_multi_add_handle) *multi_add_handle;
    __typeof__(curl_multi_remove_handle) *multi_remove_handle;
    __typeof__(curl_multi_assign) *multi_assign;
    __typeof__(curl_multi_info_read) *multi_info_read;
    __typeof__(curl_multi_setopt) *multi_setopt;
    __typeof__(curl_multi_socket_action) *multi_socket_action;
    __typeof__(curl_slist_append) *slist_append;
    __typeof__(curl_slist_free_all) *slist_free_all;
    __typeof__(curl_url) *url;
    __typeof__(curl_url_cleanup) *url_cleanup;
    __typeof__(curl_url_set) *url_set;
    __typeof__(curl_url_get) *url_get;
    __typeof__(curl_version_info) *version_info;
};

/* Loads libcurl once (thread-safe) and returns its functions, or NULL with why set to a
 * sentence naming the library and the cause (dlerror(), a missing function, or a library
 * older than the headers the core was built with, whose options it may use). Never
 * unloaded. */
const struct curl_api *curl_api_get(const char **why);

#endif
