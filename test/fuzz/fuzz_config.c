/* Fuzzes the configuration reader: the input is an INI file, optionally followed by a line
 * "%%" and NAME=VALUE lines that become extra environment variables, read and resolved against
 * a fixed set of fake plugins, then printed. The same bytes also go through the value parsers.
 * The environment is fixed (the process's own is never read), so runs are reproducible. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"

struct in_conf {
    int64_t interval_ms;
    const char *name;
    struct rmr_strlist metrics;
    int32_t mode;
    double ratio;
    uint64_t buffer;
    int64_t retries;
    int32_t verbose;
    struct rmr_taglist extra;
};

static const struct rmr_option in_options[] = {
    RMR_OPT_TIME("interval", "10s", 0, struct in_conf, interval_ms, "Interval."),
    RMR_OPT_STR("name", NULL, 0, struct in_conf, name, "Name."),
    RMR_OPT_STRLIST("metrics", "cpu,mem", 0, struct in_conf, metrics, "Metrics."),
    {.name = "mode",
     .type = RMR_OPT_ENUM,
     .def = "basic",
     .choices = "basic|full",
     .offset = (uint32_t)offsetof(struct in_conf, mode)},
    {.name = "ratio",
     .type = RMR_OPT_DOUBLE,
     .def = "0.5",
     .min = 0,
     .max = 1,
     .offset = (uint32_t)offsetof(struct in_conf, ratio)},
    RMR_OPT_BYTES("buffer", "64KiB", 0, struct in_conf, buffer, "Buffer."),
    {.name = "retries",
     .type = RMR_OPT_INT,
     .def = "3",
     .min = 0,
     .max = 10,
     .offset = (uint32_t)offsetof(struct in_conf, retries)},
    RMR_OPT_BOOLEAN("verbose", "false", 0, struct in_conf, verbose, "Verbose."),
    RMR_OPT_TAGLIST("extra", NULL, 0, struct in_conf, extra, "Extra tags."),
    RMR_OPT_END,
};

struct out_conf {
    const char *url;
    int32_t compression;
    int64_t timeout_ms;
};

static const struct rmr_option out_options[] = {
    {.name = "url",
     .type = RMR_OPT_STRING,
     .flags = RMR_OPT_REQUIRED | RMR_OPT_SECRET | RMR_OPT_ENABLES,
     .env = "ENV_DATAWAY",
     .offset = (uint32_t)offsetof(struct out_conf, url)},
    {.name = "compression",
     .type = RMR_OPT_ENUM,
     .def = "gzip",
     .choices = "none|gzip|zstd",
     .offset = (uint32_t)offsetof(struct out_conf, compression)},
    RMR_OPT_TIME("timeout", "30s", 0, struct out_conf, timeout_ms, "Timeout."),
    RMR_OPT_END,
};

struct file_conf {
    const char *path;
};

static const struct rmr_option file_options[] = {
    RMR_OPT_STR("path", "-", 0, struct file_conf, path, "Path."),
    RMR_OPT_END,
};

static const struct rmr_plugin descs[] = {
    {.struct_size = sizeof(struct rmr_plugin),
     .abi_major = RMR_ABI_MAJOR,
     .abi_minor = RMR_ABI_MINOR,
     .kind = RMR_KIND_INPUT,
     .name = "dk",
     .aliases = "self",
     .options = in_options,
     .config_size = sizeof(struct in_conf)},
    {.struct_size = sizeof(struct rmr_plugin),
     .abi_major = RMR_ABI_MAJOR,
     .abi_minor = RMR_ABI_MINOR,
     .kind = RMR_KIND_INPUT,
     .name = "ecs_fargate",
     .aliases = "ecs, fargate",
     .enable_env = "ECS_FARGATE,ENV_ECS_FARGATE",
     .options = in_options,
     .config_size = sizeof(struct in_conf)},
    {.struct_size = sizeof(struct rmr_plugin),
     .abi_major = RMR_ABI_MAJOR,
     .abi_minor = RMR_ABI_MINOR,
     .kind = RMR_KIND_OUTPUT,
     .name = "dataway",
     .options = out_options,
     .config_size = sizeof(struct out_conf)},
    {.struct_size = sizeof(struct rmr_plugin),
     .abi_major = RMR_ABI_MAJOR,
     .abi_minor = RMR_ABI_MINOR,
     .kind = RMR_KIND_OUTPUT,
     .name = "file",
     .options = file_options,
     .config_size = sizeof(struct file_conf)},
};

static const struct cfg_plugin plugins[] = {
    {&descs[0], "builtin"},
    {&descs[1], "builtin"},
    {&descs[2], "builtin"},
    {&descs[3], "builtin"},
};

static void ignore_warning(void *arg, const char *msg)
{
    (void)arg;
    if (msg == NULL || msg[0] == '\0')
        abort(); /* every warning says something */
}

#define MAX_ENV 32

/* The value parsers on the raw bytes (as one NUL-terminated string). */
static void fuzz_values(const char *text)
{
    uint64_t size;
    int64_t ms;
    int32_t b;
    if (config_parse_duration(text, &ms) == 0 && ms < 0)
        abort();
    (void)config_parse_size(text, &size);
    if (config_parse_bool(text, &b) == 0 && b != 0 && b != 1)
        abort();
    struct cfg_store *store = cfg_store_new();
    if (store == NULL)
        return;
    struct rmr_taglist tags;
    if (config_parse_tags(store, text, &tags) == 0) {
        for (uint32_t i = 0; i < tags.count; i++)
            if (tags.tags[i].key.len == 0 || tags.tags[i].key.ptr[tags.tags[i].key.len] != '\0' ||
                tags.tags[i].value.ptr[tags.tags[i].value.len] != '\0')
                abort();
    }
    for (const struct rmr_option *o = in_options; o->name != NULL; o++) {
        union {
            struct in_conf c;
            char bytes[64];
        } dst;
        char why[128];
        memset(&dst, 0, sizeof dst);
        (void)config_parse_value(store, o, text, dst.bytes, why, sizeof why);
    }
    static const char *const names[] = {"interval", "metrics", "enabled", "batch_records", NULL};
    (void)config_nearest(text, names);
    cfg_store_free(store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    fuzz_values(text);

    /* Split off "\n%%\n" NAME=VALUE lines as extra environment. */
    static char *const base_env[] = {"HOME=/root", "DD_TAGS=team:core env:test",
                                     "ENV_GLOBAL_TAGS=a=b", NULL};
    char *env[MAX_ENV + 4];
    size_t nenv = 0;
    for (; base_env[nenv] != NULL; nenv++)
        env[nenv] = base_env[nenv];
    size_t file_len = size;
    char *sep = memmem(text, size, "\n%%\n", 4);
    if (sep != NULL) {
        file_len = (size_t)(sep - text) + 1;
        char *p = sep + 4;
        while (p < text + size && nenv < MAX_ENV) {
            char *nl = memchr(p, '\n', (size_t)(text + size - p));
            if (nl != NULL)
                *nl = '\0';
            if (strchr(p, '=') != NULL)
                env[nenv++] = p;
            if (nl == NULL)
                break;
            p = nl + 1;
        }
    }
    env[nenv] = NULL;

    int fd = memfd_create("fuzz_config", MFD_CLOEXEC);
    if (fd < 0)
        goto out;
    if (write(fd, data, file_len) != (ssize_t)file_len) {
        close(fd);
        goto out;
    }
    /* The directory /proc/self/fd has no conf.d, so only this file is read. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    struct config cfg;
    char err[512];
    int rc = config_read(&cfg, path, env, err, sizeof err);
    if (rc != 0 && rc != RMR_ECONFIG && rc != RMR_ENOMEM)
        abort();
    if (rc == RMR_ECONFIG && err[0] == '\0')
        abort(); /* a configuration error always explains itself */
    if (rc == 0) {
        if (cfg.agent.log_level < RMR_LOG_ERROR || cfg.agent.log_level > RMR_LOG_DEBUG)
            abort();
        rc = config_resolve(&cfg, plugins, sizeof plugins / sizeof plugins[0], "dk", "file",
                            ignore_warning, NULL, err, sizeof err);
        if (rc != 0 && rc != RMR_ECONFIG && rc != RMR_ENOMEM)
            abort();
        if (rc == RMR_ECONFIG && err[0] == '\0')
            abort();
        for (uint32_t i = 0; rc == 0 && i < cfg.ninstances; i++)
            if (cfg.instances[i].config == NULL || cfg.instances[i].plugin == NULL)
                abort();
        if (rc == 0) {
            FILE *f = fopen("/dev/null", "w");
            if (f != NULL) {
                config_print(&cfg, f);
                fclose(f);
            }
        }
    }
    config_release(&cfg);
    close(fd);
out:
    free(text);
    return 0;
}
