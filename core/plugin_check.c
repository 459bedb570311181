/* core/plugin_check: the descriptor checks shared by the loader and the fake host, so a plugin
 * that passes its unit tests on the fake host passes the agent's loader too. No libuv. */
#include <stdio.h>
#include <string.h>

#include "loader.h"

int plugin_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' || strlen(name) > 64)
        return 0;
    for (const char *p = name; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

int loader_check(const struct rmr_plugin *desc, const char *path, struct rmr_plugin *out, char *why,
                 size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (desc == NULL) {
        snprintf(why, whylen, "refusing plugin '%s': rmr_plugin_describe() returned no descriptor",
                 path);
        return RMR_EINVAL;
    }
    if (desc->abi_major != RMR_ABI_MAJOR) {
        snprintf(why, whylen,
                 "refusing plugin '%s': it was built for remora plugin ABI %u.%u but this remora "
                 "speaks ABI %d.%d; rebuild the plugin against remora-sdk %d.x "
                 "(pkg-config --cflags remora-sdk)",
                 path, desc->abi_major, desc->abi_minor, RMR_ABI_MAJOR, RMR_ABI_MINOR,
                 RMR_ABI_MAJOR);
        return RMR_EABI;
    }
    if (desc->abi_minor > RMR_ABI_MINOR) {
        snprintf(
            why, whylen,
            "refusing plugin '%s': it was built for remora plugin ABI %u.%u, newer than this "
            "remora's ABI %d.%d; upgrade remora or rebuild the plugin against remora-sdk %d.%d",
            path, desc->abi_major, desc->abi_minor, RMR_ABI_MAJOR, RMR_ABI_MINOR, RMR_ABI_MAJOR,
            RMR_ABI_MINOR);
        return RMR_EABI;
    }
    if (desc->struct_size < LOADER_DESC_MIN_SIZE) {
        snprintf(why, whylen,
                 "refusing plugin '%s': its descriptor declares %u bytes, less than the %zu of ABI "
                 "%d.0; rebuild the plugin against remora-sdk",
                 path, desc->struct_size, (size_t)LOADER_DESC_MIN_SIZE, RMR_ABI_MAJOR);
        return RMR_EABI;
    }
    /* Copy only the bytes the plugin declared: members it does not know stay zero. */
    size_t n = desc->struct_size < sizeof *out ? desc->struct_size : sizeof *out;
    memcpy(out, desc, n);
    out->struct_size = (uint32_t)sizeof *out;

    if (!plugin_name_valid(out->name)) {
        snprintf(why, whylen, "refusing plugin '%s': its name must match [a-z0-9_]+", path);
        return RMR_EINVAL;
    }
    if (out->kind != RMR_KIND_INPUT && out->kind != RMR_KIND_OUTPUT) {
        snprintf(why, whylen, "refusing plugin '%s': unknown kind %u", path, out->kind);
        return RMR_EINVAL;
    }
    if (out->create == NULL || out->destroy == NULL) {
        snprintf(why, whylen, "refusing plugin '%s': create and destroy callbacks are required",
                 path);
        return RMR_EINVAL;
    }
    if (out->kind == RMR_KIND_OUTPUT && out->encode == NULL) {
        snprintf(why, whylen, "refusing plugin '%s': an output needs an encode callback", path);
        return RMR_EINVAL;
    }
    if (out->options != NULL) {
        for (const struct rmr_option *o = out->options; o->name != NULL; o++) {
            if (o->type < RMR_OPT_STRING || o->type > RMR_OPT_TAGS || !plugin_name_valid(o->name) ||
                o->offset >= (out->config_size ? out->config_size : 1)) {
                snprintf(why, whylen, "refusing plugin '%s': option '%s' is malformed", path,
                         o->name ? o->name : "?");
                return RMR_EINVAL;
            }
        }
    }
    return 0;
}
