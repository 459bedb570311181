/* Unit tests for core/config: value parsing, files, conf.d, environment, resolve and print.
 * Uses fake plugin descriptors only; temporary files live under a mkdtemp() directory. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "tap.h"

/* ---- fake plugins --------------------------------------------------------------------------- */

struct dk_conf {
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

static const struct rmr_option dk_options[] = {
    RMR_OPT_TIME("interval", "10s", 0, struct dk_conf, interval_ms, "Collection interval."),
    RMR_OPT_STR("name", NULL, 0, struct dk_conf, name, "A name."),
    RMR_OPT_STRLIST("metrics", "cpu,mem", 0, struct dk_conf, metrics, "Metric sets."),
    {.name = "mode",
     .type = RMR_OPT_ENUM,
     .def = "basic",
     .choices = "basic|full",
     .help = "Mode.",
     .offset = (uint32_t)offsetof(struct dk_conf, mode)},
    {.name = "ratio",
     .type = RMR_OPT_DOUBLE,
     .def = "0.5",
     .min = 0,
     .max = 1,
     .help = "Sampling ratio.",
     .offset = (uint32_t)offsetof(struct dk_conf, ratio)},
    RMR_OPT_BYTES("buffer", "64KiB", 0, struct dk_conf, buffer, "Buffer size."),
    {.name = "retries",
     .type = RMR_OPT_INT,
     .def = "3",
     .min = 0,
     .max = 10,
     .help = "Retries.",
     .offset = (uint32_t)offsetof(struct dk_conf, retries)},
    RMR_OPT_BOOLEAN("verbose", "false", 0, struct dk_conf, verbose, "Verbose."),
    RMR_OPT_TAGLIST("extra", NULL, 0, struct dk_conf, extra, "Extra tags."),
    RMR_OPT_END,
};

struct ecs_conf {
    int64_t interval_ms;
    const char *endpoint;
};

static const struct rmr_option ecs_options[] = {
    RMR_OPT_TIME("interval", "10s", 0, struct ecs_conf, interval_ms, "Collection interval."),
    RMR_OPT_STR("endpoint", "http://169.254.170.2", 0, struct ecs_conf, endpoint, "Endpoint."),
    RMR_OPT_END,
};

struct dataway_conf {
    const char *url;
    int32_t compression;
    uint64_t max_body;
    int64_t timeout_ms;
};

static const struct rmr_option dataway_options[] = {
    {.name = "url",
     .type = RMR_OPT_STRING,
     .flags = RMR_OPT_REQUIRED | RMR_OPT_SECRET | RMR_OPT_ENABLES,
     .env = "ENV_DATAWAY",
     .help = "Dataway URL with token.",
     .offset = (uint32_t)offsetof(struct dataway_conf, url)},
    {.name = "compression",
     .type = RMR_OPT_ENUM,
     .def = "gzip",
     .choices = "none|gzip|zstd",
     .help = "Compression.",
     .offset = (uint32_t)offsetof(struct dataway_conf, compression)},
    RMR_OPT_BYTES("max_body", "10MiB", 0, struct dataway_conf, max_body, "Max body."),
    RMR_OPT_TIME("timeout", "30s", 0, struct dataway_conf, timeout_ms, "Timeout."),
    RMR_OPT_END,
};

struct file_conf {
    const char *path;
};

static const struct rmr_option file_options[] = {
    RMR_OPT_STR("path", "-", 0, struct file_conf, path, "Path, - for stdout."),
    RMR_OPT_END,
};

static const struct rmr_plugin dk_desc = {.struct_size = sizeof(struct rmr_plugin),
                                          .abi_major = RMR_ABI_MAJOR,
                                          .abi_minor = RMR_ABI_MINOR,
                                          .kind = RMR_KIND_INPUT,
                                          .name = "dk",
                                          .aliases = "self",
                                          .options = dk_options,
                                          .config_size = sizeof(struct dk_conf)};
static const struct rmr_plugin ecs_desc = {.struct_size = sizeof(struct rmr_plugin),
                                           .abi_major = RMR_ABI_MAJOR,
                                           .abi_minor = RMR_ABI_MINOR,
                                           .kind = RMR_KIND_INPUT,
                                           .name = "ecs_fargate",
                                           .aliases = "ecs",
                                           .enable_env = "ECS_FARGATE,ENV_ECS_FARGATE",
                                           .options = ecs_options,
                                           .config_size = sizeof(struct ecs_conf)};
static const struct rmr_plugin dataway_desc = {.struct_size = sizeof(struct rmr_plugin),
                                               .abi_major = RMR_ABI_MAJOR,
                                               .abi_minor = RMR_ABI_MINOR,
                                               .kind = RMR_KIND_OUTPUT,
                                               .name = "dataway",
                                               .options = dataway_options,
                                               .config_size = sizeof(struct dataway_conf)};
static const struct rmr_plugin file_desc = {.struct_size = sizeof(struct rmr_plugin),
                                            .abi_major = RMR_ABI_MAJOR,
                                            .abi_minor = RMR_ABI_MINOR,
                                            .kind = RMR_KIND_OUTPUT,
                                            .name = "file",
                                            .options = file_options,
                                            .config_size = sizeof(struct file_conf)};

static const struct cfg_plugin plugins[] = {
    {&dk_desc, "builtin"},
    {&ecs_desc, "builtin"},
    {&dataway_desc, "builtin"},
    {&file_desc, "builtin"},
};
#define NPLUGINS ((uint32_t)(sizeof plugins / sizeof plugins[0]))

/* ---- helpers -------------------------------------------------------------------------------- */

static char tmpdir[64];

static void write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static const char *main_path(void)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/remora.conf", tmpdir);
    return path;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

struct warns {
    char text[4096];
    int count;
};

static void on_warn(void *arg, const char *msg)
{
    struct warns *w = arg;
    size_t len = strlen(w->text);
    snprintf(w->text + len, sizeof w->text - len, "%s\n", msg);
    w->count++;
}

static char err[1024];
static struct warns warns;

/* Reads (path may be NULL) and resolves against the fake plugins. */
static int load(struct config *cfg, const char *path, char **env)
{
    memset(&warns, 0, sizeof warns);
    err[0] = '\0';
    int rc = config_read(cfg, path, env, err, sizeof err);
    if (rc != 0)
        return rc;
    return config_resolve(cfg, plugins, NPLUGINS, "dk", "file", on_warn, &warns, err, sizeof err);
}

/* Writes text as the main file and loads it. */
static int load_text(struct config *cfg, const char *text, char **env)
{
    write_file("remora.conf", text);
    return load(cfg, main_path(), env);
}

static const struct cfg_instance *find(const struct config *cfg, const char *name)
{
    for (uint32_t i = 0; i < cfg->ninstances; i++)
        if (strcmp(cfg->instances[i].name, name) == 0)
            return &cfg->instances[i];
    return NULL;
}

static const struct cfg_setting *setting(const struct cfg_setting *s, uint32_t n, const char *key)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(s[i].opt->name, key) == 0)
            return &s[i];
    return NULL;
}

static const struct cfg_setting *inst_setting(const struct config *cfg, const char *inst,
                                              const char *key)
{
    const struct cfg_instance *in = find(cfg, inst);
    return in != NULL ? setting(in->settings, in->nsettings, key) : NULL;
}

static const struct cfg_setting *agent_setting(const struct config *cfg, const char *key)
{
    return setting(cfg->agent_settings, cfg->nagent_settings, key);
}

static const char *src_env(const struct cfg_setting *s)
{
    return s != NULL && s->src.origin == CFG_ENV ? s->src.env : "(not env)";
}

/* Loads text expecting RMR_ECONFIG and checks the message contains want. */
static void expect_error(const char *text, char **env, const char *want, const char *name)
{
    struct config cfg;
    int rc = load_text(&cfg, text, env);
    IS_INT(rc, RMR_ECONFIG, name);
    CONTAINS(err, want, name);
    config_release(&cfg);
}

static int tag_is(const struct rmr_taglist *l, uint32_t i, const char *k, const char *v)
{
    return i < l->count && l->tags[i].key.len == strlen(k) &&
           memcmp(l->tags[i].key.ptr, k, strlen(k)) == 0 && l->tags[i].value.len == strlen(v) &&
           memcmp(l->tags[i].value.ptr, v, strlen(v)) == 0 && l->tags[i].key.ptr[strlen(k)] == 0;
}

/* ---- value parsing -------------------------------------------------------------------------- */

static void test_sizes(void)
{
    static const struct {
        const char *text;
        int rc;
        uint64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"512", 0, 512},
        {"512B", 0, 512},
        {"64KiB", 0, 65536},
        {"64K", 0, 65536},
        {"64k", 0, 65536},
        {"1KB", 0, 1000},
        {"1kb", 0, 1000},
        {"1MB", 0, 1000000},
        {"1MiB", 0, 1048576},
        {"1M", 0, 1048576},
        {"1GB", 0, 1000000000},
        {"1GiB", 0, 1073741824},
        {"2TiB", 0, 2199023255552ull},
        {"1TB", 0, 1000000000000ull},
        {"1.5KiB", 0, 1536},
        {"0.5MiB", 0, 524288},
        {" 64 MiB ", 0, 67108864},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", RMR_ERANGE, 0},
        {"16777216TiB", RMR_ERANGE, 0},
        {"16777215TiB", 0, 16777215ull << 40},
        {"17179869184GiB", RMR_ERANGE, 0},
        {"99999999999999999999999", RMR_ERANGE, 0},
        {"", RMR_EINVAL, 0},
        {"abc", RMR_EINVAL, 0},
        {"-1", RMR_EINVAL, 0},
        {"1.MiB", RMR_EINVAL, 0},
        {".5MiB", RMR_EINVAL, 0},
        {"1XB", RMR_EINVAL, 0},
        {"1 MiB x", RMR_EINVAL, 0},
        {"1MiB1", RMR_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[96];
        uint64_t v = 12345;
        int rc = config_parse_size(cases[i].text, &v);
        snprintf(name, sizeof name, "size '%s' rc", cases[i].text);
        IS_INT(rc, cases[i].rc, name);
        if (cases[i].rc == 0) {
            snprintf(name, sizeof name, "size '%s' value", cases[i].text);
            IS_UINT(v, cases[i].want, name);
        }
    }
}

static void test_durations(void)
{
    static const struct {
        const char *text;
        int rc;
        int64_t want;
    } cases[] = {
        {"10s", 0, 10000},
        {"250ms", 0, 250},
        {"1h30m", 0, 5400000},
        {"1h 30m", 0, 5400000},
        {"5m", 0, 300000},
        {"1d", 0, 86400000},
        {"5", 0, 5000},
        {"0", 0, 0},
        {"0s", 0, 0},
        {"1.5s", 0, 1500},
        {"1us", 0, 1},
        {"1ns", 0, 1},
        {"999us", 0, 1},
        {"1500us", 0, 2},
        {"2ms500us", 0, 3},
        {"1\xc2\xb5s", 0, 1},
        {"10S", 0, 10000},
        {"106751991167d", 0, 9223372036828800000ll},
        {"106751991168d", RMR_ERANGE, 0},
        {"9223372036854775807ms", 0, INT64_MAX},
        {"9223372036854775808ms", RMR_ERANGE, 0},
        {"99999999999999999999s", RMR_ERANGE, 0},
        {"", RMR_EINVAL, 0},
        {"s", RMR_EINVAL, 0},
        {"10x", RMR_EINVAL, 0},
        {"1m5", RMR_EINVAL, 0},
        {"5 5", RMR_EINVAL, 0},
        {"-1s", RMR_EINVAL, 0},
        {"1.s", RMR_EINVAL, 0},
        {"1y", RMR_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[96];
        int64_t v = -7;
        int rc = config_parse_duration(cases[i].text, &v);
        snprintf(name, sizeof name, "duration '%s' rc", cases[i].text);
        IS_INT(rc, cases[i].rc, name);
        if (cases[i].rc == 0) {
            snprintf(name, sizeof name, "duration '%s' value", cases[i].text);
            IS_INT(v, cases[i].want, name);
        }
    }
}

static void test_bools_tags_nearest(void)
{
    static const char *const yes[] = {"true", "TRUE", "on", "On", "yes", "1", " true "};
    static const char *const no[] = {"false", "False", "off", "no", "NO", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        int32_t v = -1;
        OK(config_parse_bool(yes[i], &v) == 0 && v == 1, yes[i]);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        int32_t v = -1;
        OK(config_parse_bool(no[i], &v) == 0 && v == 0, no[i]);
    }
    int32_t b;
    IS_INT(config_parse_bool("maybe", &b), RMR_EINVAL, "bool 'maybe' fails");
    IS_INT(config_parse_bool("", &b), RMR_EINVAL, "bool '' fails");
    IS_INT(config_parse_bool("2", &b), RMR_EINVAL, "bool '2' fails");

    struct cfg_store *store = cfg_store_new();
    struct rmr_taglist t;
    IS_INT(config_parse_tags(store, "a:b,c=d e  f: ,url:http://x:1/y k=v=w", &t), 0, "tags parse");
    IS_UINT(t.count, 6, "tags count");
    OK(tag_is(&t, 0, "a", "b"), "tag a:b");
    OK(tag_is(&t, 1, "c", "d"), "tag c=d");
    OK(tag_is(&t, 2, "e", ""), "bare tag e");
    OK(tag_is(&t, 3, "f", ""), "tag f: with empty value");
    OK(tag_is(&t, 4, "url", "http://x:1/y"), "tag split at the first ':'");
    OK(tag_is(&t, 5, "k", "v=w"), "tag split at the first '='");
    IS_INT(config_parse_tags(store, "  , ,", &t), 0, "empty tags parse");
    IS_UINT(t.count, 0, "empty tags count");
    IS_INT(config_parse_tags(store, "a:b :v", &t), RMR_EINVAL, "tag without key fails");
    IS_INT(config_parse_tags(store, "a=1 b:2", &t), 0, "Datakit and Datadog forms mix");
    OK(tag_is(&t, 0, "a", "1") && tag_is(&t, 1, "b", "2"), "mixed tags");
    cfg_store_free(store);
    cfg_store_free(NULL);

    static const char *const names[] = {"interval", "metrics", "mode", "ratio", NULL};
    IS_STR(config_nearest("intervall", names), "interval", "nearest: extra letter");
    IS_STR(config_nearest("Interval", names), "interval", "nearest ignores case");
    IS_STR(config_nearest("mdoe", names), "mode", "nearest: transposition");
    IS_STR(config_nearest("zzzzzz", names), NULL, "nearest: nothing close");
    IS_STR(config_nearest("", names), NULL, "nearest: empty word");
}

/* config_fill and config_parse_value over every type of the dk schema. */
static void test_fill(void)
{
    struct cfg_store *store = cfg_store_new();
    struct dk_conf c;
    memset(&c, 0, sizeof c);
    const char *keys[] = {"interval", "name",    "metrics", "mode", "ratio",
                          "buffer",   "retries", "verbose", "extra"};
    const char *vals[] = {"1h30m",  "n1", " a, ,b ,c ", "FULL",   "0.25",
                          "1.5KiB", "10", "on",         "x:1 y=2"};
    IS_INT(config_fill(store, dk_options, &c, keys, vals, 9, err, sizeof err), 0, "fill all");
    IS_INT(c.interval_ms, 5400000, "fill duration");
    IS_STR(c.name, "n1", "fill string");
    IS_UINT(c.metrics.count, 3, "fill list count");
    IS_STR(c.metrics.items[0], "a", "list item 0 trimmed");
    IS_STR(c.metrics.items[2], "c", "list item 2 trimmed");
    OK(c.metrics.items[3] == NULL, "list NULL-terminated");
    IS_INT(c.mode, 1, "enum index, case-insensitive");
    IS_DBL(c.ratio, 0.25, 1e-12, "fill double");
    IS_UINT(c.buffer, 1536, "fill size");
    IS_INT(c.retries, 10, "fill int at max");
    IS_INT(c.verbose, 1, "fill bool");
    IS_UINT(c.extra.count, 2, "fill tags");

    memset(&c, 0, sizeof c);
    IS_INT(config_fill(store, dk_options, &c, NULL, NULL, 0, err, sizeof err), 0, "fill defaults");
    IS_INT(c.interval_ms, 10000, "default duration");
    OK(c.name == NULL, "unset string stays NULL");
    IS_UINT(c.metrics.count, 2, "default list");
    IS_INT(c.mode, 0, "default enum");
    IS_DBL(c.ratio, 0.5, 1e-12, "default double");
    IS_UINT(c.buffer, 65536, "default size");
    IS_INT(c.retries, 3, "default int");
    IS_UINT(c.extra.count, 0, "unset tags");

    static const struct {
        const char *key, *value, *want;
    } bad[] = {
        {"interval", "abc",
         "key 'interval': expected a duration like 10s, 250ms or 1h30m, "
         "got 'abc'"},
        {"mode", "bogus", "key 'mode': expected one of basic|full, got 'bogus'"},
        {"ratio", "1.5", "key 'ratio': must be between 0 and 1, got '1.5'"},
        {"ratio", "x", "key 'ratio': expected a number, got 'x'"},
        {"ratio", "nan", "key 'ratio': expected a number"},
        {"buffer", "1ZB", "key 'buffer': expected a size like 512, 64KiB or 1GB, got '1ZB'"},
        {"buffer", "99999999TiB", "key 'buffer': size too large"},
        {"retries", "11", "key 'retries': must be between 0 and 10, got '11'"},
        {"retries", "3x", "key 'retries': expected an integer, got '3x'"},
        {"retries", "99999999999999999999", "key 'retries': integer out of range"},
        {"verbose", "maybe", "key 'verbose': expected true or false"},
        {"extra", "=v", "key 'extra': expected tags like"},
        {"intervall", "1s", "unknown key 'intervall'; did you mean 'interval'?"},
        {"zzzzzzzz", "1s", "unknown key 'zzzzzzzz'; known keys: interval, name, metrics"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&c, 0, sizeof c);
        int rc = config_fill(store, dk_options, &c, &bad[i].key, &bad[i].value, 1, err, sizeof err);
        IS_INT(rc, RMR_ECONFIG, bad[i].want);
        CONTAINS(err, bad[i].want, bad[i].want);
    }

    /* A required option without a value, and a secret whose bad value is never shown. */
    struct dataway_conf d;
    memset(&d, 0, sizeof d);
    IS_INT(config_fill(store, dataway_options, &d, NULL, NULL, 0, err, sizeof err), RMR_ECONFIG,
           "required missing");
    IS_STR(err, "missing required key 'url'", "required message");

    char why[128];
    int64_t v;
    IS_INT(config_parse_value(store, &dk_options[0], "7s", &v, why, sizeof why), 0,
           "parse_value ok");
    IS_INT(v, 7000, "parse_value value");
    IS_INT(config_parse_value(store, &dk_options[0], "x", &v, why, sizeof why), RMR_EINVAL,
           "parse_value bad");
    IS_STR(why, "expected a duration like 10s, 250ms or 1h30m", "parse_value why");
    IS_INT(config_parse_value(store, &dk_options[6], "42", &v, why, sizeof why), RMR_ERANGE,
           "parse_value range");
    cfg_store_free(store);
}

/* ---- files ---------------------------------------------------------------------------------- */

static void test_file_basic(void)
{
    struct config cfg;
    int rc = load_text(&cfg,
                       "; remora test\n"                   /* 1 */
                       "[agent]\n"                         /* 2 */
                       "log_level = debug\n"               /* 3 */
                       "hostname = filehost\n"             /* 4 */
                       "tags = team:core\n"                /* 5 */
                       "\n"                                /* 6 */
                       "[input.dk]\n"                      /* 7 */
                       "interval = 30s ; inline comment\n" /* 8 */
                       "metrics = cpu,\n"                  /* 9 */
                       "    disk, net\n"                   /* 10 */
                       "\tio   # trailing comment\n"       /* 11 */
                       "mode = FULL\n"                     /* 12 */
                       "ratio = 0.25\n"                    /* 13 */
                       "name = a#b\n"                      /* 14 */
                       "\n"                                /* 15 */
                       "[input.self.two]\n"                /* 16 */
                       "interval = 1m\n"                   /* 17 */
                       "interval = 2m\n"                   /* 18 */
                       "[output.file]\n"                   /* 19 */
                       "batch_records = 500\n"             /* 20 */
                       "batch_bytes = 2MiB\n",             /* 21 */
                       NULL);
    IS_INT(rc, 0, "basic file loads");
    if (rc != 0)
        printf("# %s\n", err);
    IS_INT(cfg.agent.log_level, RMR_LOG_DEBUG, "log_level holds the rmr_log_level");
    IS_STR(cfg.agent.hostname, "filehost", "agent hostname from file");
    OK(tag_is(&cfg.agent.tags, 0, "team", "core"), "agent tags");
    IS_INT(cfg.agent.shutdown_grace_ms, 20000, "agent default shutdown_grace");
    IS_INT(cfg.agent.log_rate_limit_ms, 10000, "agent default log_rate_limit");
    IS_INT(cfg.agent.enabled_inputs_set, 0, "enabled_inputs not set");
    IS_UINT(cfg.ninstances, 3, "three instances");
    if (cfg.ninstances == 3) {
        IS_STR(cfg.instances[0].name, "input.dk", "sorted: input.dk first");
        IS_STR(cfg.instances[1].name, "input.dk.two", "labelled by the alias's plugin");
        IS_STR(cfg.instances[2].name, "output.file", "outputs last");
        IS_STR(cfg.instances[1].label, "two", "label");
        OK(cfg.instances[0].label == NULL, "no label");
    }
    const struct cfg_instance *dk = find(&cfg, "input.dk");
    if (dk != NULL) {
        const struct dk_conf *c = dk->config;
        IS_INT(c->interval_ms, 30000, "dk interval (inline ';' comment cut)");
        IS_UINT(c->metrics.count, 4, "continuation lines extend the list");
        if (c->metrics.count == 4) {
            IS_STR(c->metrics.items[1], "disk", "continued item");
            IS_STR(c->metrics.items[3], "io", "inline '#' comment cut");
        }
        IS_INT(c->mode, 1, "enum FULL");
        IS_DBL(c->ratio, 0.25, 1e-12, "double");
        IS_STR(c->name, "a#b", "'#' without space before it is data");
        IS_INT(dk->common.enabled, 1, "enabled by default");
        IS_INT(dk->enabled_by.origin, CFG_FILE, "enabled_by file");
        IS_UINT(dk->enabled_by.line, 7, "enabled_by the section's line");
        const struct cfg_setting *s = setting(dk->settings, dk->nsettings, "interval");
        OK(s && s->src.origin == CFG_FILE && s->src.line == 8, "interval source line");
        s = setting(dk->settings, dk->nsettings, "metrics");
        IS_STR(s ? s->text : NULL, "cpu,,disk, net,io", "continuations joined with commas");
        s = setting(dk->settings, dk->nsettings, "retries");
        OK(s && s->src.origin == CFG_DEFAULT, "retries default source");
        IS_STR(s ? s->text : NULL, "3", "default text recorded");
        s = setting(dk->settings, dk->nsettings, "enabled");
        OK(s != NULL, "common options among the settings");
    }
    const struct cfg_instance *two = find(&cfg, "input.dk.two");
    if (two != NULL) {
        const struct dk_conf *c = two->config;
        IS_INT(c->interval_ms, 120000, "duplicate key: the later wins");
        const struct cfg_setting *s = setting(two->settings, two->nsettings, "interval");
        OK(s && s->src.line == 18, "duplicate key: the later's line");
        IS_UINT(c->metrics.count, 2, "labelled instance has its own defaults");
    }
    const struct cfg_instance *file = find(&cfg, "output.file");
    if (file != NULL) {
        IS_INT(file->common.batch_records, 500, "batch_records");
        IS_UINT(file->common.batch_bytes, 2u << 20, "batch_bytes");
        IS_INT(file->common.batch_timeout_ms, 1000, "batch_timeout default");
        IS_UINT(file->common.queue_bytes, 64u << 20, "queue_bytes default");
        IS_STR(((const struct file_conf *)file->config)->path, "-", "file path default");
    }
    IS_INT(warns.count, 0, "no warnings");
    OK(find(&cfg, "output.dataway") == NULL, "no default output: one is configured");
    uint32_t markers = 0;
    for (uint32_t i = 0; i < cfg.nentries; i++)
        markers += cfg.entries[i].key[0] == '\0';
    IS_UINT(markers, 4, "section markers in entries");
    config_release(&cfg);
    config_release(&cfg); /* zeroed: a no-op */
}

static void test_empty_and_disabled(void)
{
    struct config cfg;
    IS_INT(
        load_text(&cfg, "[output.dataway]\nurl = https://x\n[input.dk]\nenabled = false\n", NULL),
        0, "disabled input loads");
    const struct cfg_instance *dk = find(&cfg, "input.dk");
    OK(dk != NULL && dk->common.enabled == 0, "enabled = false keeps the instance, off");
    IS_UINT(cfg.ninstances, 2, "no default input: one is configured (off)");
    OK(find(&cfg, "output.file") == NULL, "no default output");
    config_release(&cfg);

    IS_INT(load_text(&cfg, "[agent]\nhostname =\n[output.file]\npath =\n[output.file.e]\n", NULL),
           0, "empty section loads");
    OK(cfg.agent.hostname == NULL, "an empty string value means unset");
    const struct cfg_instance *fo = find(&cfg, "output.file");
    IS_STR(fo ? ((const struct file_conf *)fo->config)->path : NULL, "-",
           "an empty string value means the default");
    OK(find(&cfg, "output.file.e") != NULL, "an empty section creates its instance");
    const struct cfg_instance *def = find(&cfg, "input.dk");
    OK(def != NULL && def->enabled_by.origin == CFG_DEFAULT, "default input dk");
    config_release(&cfg);
}

static void test_conf_d(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/conf.d", tmpdir);
    mkdir(path, 0700);
    write_file("conf.d/b.conf", "[input.dk]\ninterval = 30s\n");
    write_file("conf.d/a.conf", "[input.dk]\ninterval = 20s\nmode = full\n");
    write_file("conf.d/c.conf.bak", "[nonsense\n");
    write_file("conf.d/.hidden.conf", "[nonsense\n");
    snprintf(path, sizeof path, "%s/conf.d/dir.conf", tmpdir);
    mkdir(path, 0700);
    struct config cfg;
    int rc = load_text(&cfg, "[input.dk]\ninterval = 10s\nratio = 0.1\n", NULL);
    IS_INT(rc, 0, "conf.d loads");
    if (rc != 0)
        printf("# %s\n", err);
    const struct cfg_instance *dk = find(&cfg, "input.dk");
    if (dk != NULL) {
        const struct dk_conf *c = dk->config;
        IS_INT(c->interval_ms, 30000, "conf.d: b.conf read last wins");
        IS_INT(c->mode, 1, "conf.d: a.conf key kept");
        IS_DBL(c->ratio, 0.1, 1e-12, "main file key kept");
        const struct cfg_setting *s = setting(dk->settings, dk->nsettings, "interval");
        OK(s && s->src.file && strstr(s->src.file, "conf.d/b.conf") && s->src.line == 2,
           "source names conf.d/b.conf:2");
    }
    config_release(&cfg);

    write_file("conf.d/z.conf", "[input.dk]\nintervall = 1s\n");
    expect_error("[input.dk]\n", NULL, "conf.d/z.conf:2: [input.dk] unknown key 'intervall'",
                 "conf.d error names its file");
    snprintf(path, sizeof path, "%s/conf.d/z.conf", tmpdir);
    remove(path);
}

static void test_errors(void)
{
    expect_error("[input.dk]\ninterval = 1s\nintervall = 5s\n", NULL,
                 "remora.conf:3: [input.dk] unknown key 'intervall'; did you mean 'interval'?",
                 "unknown key suggestion");
    expect_error("[output.file]\nbatch_records = abc\n", NULL,
                 "remora.conf:2: [output.file] key 'batch_records': expected an integer, got "
                 "'abc'",
                 "bad integer");
    expect_error("[output.file]\nbatch_records = 0\n", NULL,
                 "remora.conf:2: [output.file] key 'batch_records': must be between 1 and "
                 "1000000, got '0'",
                 "integer range");
    expect_error("[output.file]\nbatch_timeout = 5ms\n", NULL,
                 "remora.conf:2: [output.file] key 'batch_timeout': must be between 10ms and "
                 "10m, got '5ms'",
                 "duration range");
    expect_error("[output.file]\nqueue_bytes = 1KiB\n", NULL,
                 "key 'queue_bytes': must be between 64KiB and 64GiB", "size range");
    expect_error("[input.dk]\n\ninterval = soon\n", NULL,
                 "remora.conf:3: [input.dk] key 'interval': expected a duration", "bad duration");
    expect_error("[input.dk]\nmode = fast\n", NULL,
                 "remora.conf:2: [input.dk] key 'mode': expected one of basic|full, got 'fast'",
                 "bad enum");
    expect_error("[input.dk]\nratio = 2\n", NULL,
                 "remora.conf:2: [input.dk] key 'ratio': must be between 0 and 1", "bad double");
    expect_error("[input.dk]\nenabled = perhaps\n", NULL,
                 "remora.conf:2: [input.dk] key 'enabled': expected true or false", "bad bool");
    expect_error("[input.dk]\nbuffer = 12 parsecs\n", NULL,
                 "remora.conf:2: [input.dk] key 'buffer': expected a size", "bad size");
    expect_error("[input.dk]\nretries = 1.5\n", NULL,
                 "remora.conf:2: [input.dk] key 'retries': expected an integer", "bad int");
    expect_error("[input.dk]\nextra = :x\n", NULL,
                 "remora.conf:2: [input.dk] key 'extra': expected tags", "bad tags");
    expect_error("[input.dk]\ntags = a:b =c\n", NULL,
                 "remora.conf:2: [input.dk] key 'tags': expected tags", "bad common tags");
    expect_error("[agent]\nlog_levle = info\n", NULL,
                 "remora.conf:2: [agent] unknown key 'log_levle'; did you mean 'log_level'?",
                 "agent unknown key");
    expect_error("[agent]\nlog_level = verbose\n", NULL,
                 "remora.conf:2: [agent] key 'log_level': expected one of error|warn|info|debug",
                 "agent bad enum");
    expect_error("[inputs.dk]\n", NULL,
                 "remora.conf:1: unknown section '[inputs.dk]'; did you mean '[input.dk]'?",
                 "unknown section suggestion");
    expect_error("\n[foo]\n", NULL, "remora.conf:2: unknown section '[foo]'; sections are [agent]",
                 "unknown section");
    expect_error("[input.DK]\n", NULL, "did you mean '[input.dk]'?", "uppercase section");
    expect_error("[input.dk.two.three]\n", NULL, "unknown section '[input.dk.two.three]'",
                 "too many dots");
    expect_error("[input.dk\n", NULL, "remora.conf:1: section header has no closing ']'",
                 "unclosed section");
    expect_error("[input.dkk]\n", NULL,
                 "remora.conf:1: [input.dkk] unknown input plugin 'dkk'; did you mean 'dk'?",
                 "unknown plugin suggestion");
    expect_error("[input.dkk.x]\n", NULL, "[input.dkk.x] unknown input plugin 'dkk'; did you",
                 "unknown plugin with a label");
    expect_error("[output.kafkaesque]\n", NULL,
                 "[output.kafkaesque] unknown output plugin 'kafkaesque'; known outputs: "
                 "dataway, file",
                 "unknown plugin lists the known");
    expect_error("[output.dataway]\ntimeout = 5s\n", NULL,
                 "[output.dataway] missing required key 'url' (set it in the file or with "
                 "REMORA_OUTPUT_DATAWAY_URL or ENV_DATAWAY)",
                 "missing required");
    char *empty_url[] = {"ENV_DATAWAY=", NULL};
    expect_error("[output.dataway]\n", empty_url, "missing required key 'url'",
                 "empty required value is missing");
    char *bad_env[] = {"REMORA_OUTPUT_FILE_BATCH_RECORDS=abc", NULL};
    expect_error("[output.file]\n", bad_env,
                 "REMORA_OUTPUT_FILE_BATCH_RECORDS: [output.file] key 'batch_records': expected "
                 "an integer, got 'abc'",
                 "env bad value names the variable");
    char *bad_agent_env[] = {"REMORA_AGENT_SHUTDOWN_GRACE=1h", NULL};
    expect_error("", bad_agent_env,
                 "REMORA_AGENT_SHUTDOWN_GRACE: [agent] key 'shutdown_grace': must be between 0ms "
                 "and 10m, got '1h'",
                 "agent env range");
    expect_error("key = value\n", NULL, "remora.conf:1: key 'key' is outside of any section",
                 "key outside section");
    expect_error("[input.dk]\njunk line\n", NULL,
                 "remora.conf:2: expected 'key = value', '[section]' or a comment",
                 "syntax error line");
    expect_error("[input.dk]\ninterval = 10s\n  20s\n", NULL,
                 "remora.conf:3: [input.dk] key 'interval' cannot continue on an indented line",
                 "continuation for a non-list");
    expect_error("[input.dk]\nname = x\r\n  y\r\n", NULL, "key 'name' cannot continue",
                 "continuation for a string (CRLF)");

    char line[400];
    int n = snprintf(line, sizeof line, "[input.dk]\nmetrics = ");
    memset(line + n, 'a', 250);
    line[n + 250] = '\n';
    line[n + 251] = '\0';
    expect_error(line, NULL,
                 "remora.conf:2: line is longer than 199 characters (the INI parser's limit); "
                 "split a long list over several lines",
                 "long line");
    /* 199 characters exactly still fit. */
    n = snprintf(line, sizeof line, "[input.dk]\nmetrics = ");
    memset(line + n, 'b', 199 - 10);
    line[n + 189] = '\n';
    line[n + 190] = '\0';
    struct config cfg;
    IS_INT(load_text(&cfg, line, NULL), 0, "a 199-character line fits");
    config_release(&cfg);

    err[0] = '\0';
    IS_INT(config_read(&cfg, "/nonexistent/remora.conf", NULL, err, sizeof err), RMR_ECONFIG,
           "missing explicit file");
    CONTAINS(err, "cannot open '/nonexistent/remora.conf'", "missing file message");
    config_release(&cfg);

    /* A secret's bad value is never echoed. */
    static const struct rmr_option secret_opts[] = {
        {.name = "token", .type = RMR_OPT_INT, .flags = RMR_OPT_SECRET, .offset = 0},
        RMR_OPT_END,
    };
    struct cfg_store *store = cfg_store_new();
    int64_t tok;
    const char *k = "token", *v = "hunter2";
    IS_INT(config_fill(store, secret_opts, &tok, &k, &v, 1, err, sizeof err), RMR_ECONFIG,
           "secret bad value");
    OK(strstr(err, "hunter2") == NULL, "secret value not in the message");
    CONTAINS(err, "key 'token': expected an integer", "secret message names the key");
    cfg_store_free(store);
}

/* ---- environment ---------------------------------------------------------------------------- */

static void test_precedence(void)
{
    const char *text = "[agent]\nhostname = filehost\n[output.dataway]\nurl = https://file\n";
    struct config cfg;

    IS_INT(load_text(&cfg, text, NULL), 0, "precedence: file only");
    IS_STR(cfg.agent.hostname, "filehost", "file value");
    const struct cfg_setting *s = agent_setting(&cfg, "hostname");
    OK(s && s->src.origin == CFG_FILE && s->src.line == 2, "file source");
    s = agent_setting(&cfg, "log_level");
    OK(s && s->src.origin == CFG_DEFAULT, "default source");
    IS_INT(cfg.agent.log_level, RMR_LOG_INFO, "default log_level is info");
    config_release(&cfg);

    char *env1[] = {"ENV_HOSTNAME=envhost", "ENV_DATAWAY=https://envway", NULL};
    IS_INT(load_text(&cfg, text, env1), 0, "precedence: ecosystem env");
    IS_STR(cfg.agent.hostname, "envhost", "ecosystem env beats file");
    IS_STR(src_env(agent_setting(&cfg, "hostname")), "ENV_HOSTNAME", "env source");
    const struct cfg_instance *dw = find(&cfg, "output.dataway");
    IS_STR(dw ? ((const struct dataway_conf *)dw->config)->url : NULL, "https://envway",
           "ENV_DATAWAY beats file");
    IS_STR(src_env(inst_setting(&cfg, "output.dataway", "url")), "ENV_DATAWAY", "url source");
    OK(dw && dw->enabled_by.origin == CFG_FILE, "file section enabled it");
    config_release(&cfg);

    char *env2[] = {"ENV_HOSTNAME=envhost", "DD_HOSTNAME=ddhost", NULL};
    IS_INT(load_text(&cfg, text, env2), 0, "precedence: two ecosystem variables");
    IS_STR(cfg.agent.hostname, "ddhost", "the first listed variable wins");
    config_release(&cfg);

    char *env3[] = {"DD_HOSTNAME=ddhost",          "REMORA_AGENT_HOSTNAME=remorahost",
                    "ENV_DATAWAY=https://envway",  "REMORA_OUTPUT_DATAWAY_URL=https://remora",
                    "REMORA_AGENT_LOG_LEVEL=warn", NULL};
    IS_INT(load_text(&cfg, text, env3), 0, "precedence: REMORA_ env");
    IS_STR(cfg.agent.hostname, "remorahost", "REMORA_AGENT_ beats the ecosystem");
    IS_STR(src_env(agent_setting(&cfg, "hostname")), "REMORA_AGENT_HOSTNAME", "remora source");
    IS_INT(cfg.agent.log_level, RMR_LOG_WARN, "REMORA_AGENT_LOG_LEVEL");
    dw = find(&cfg, "output.dataway");
    IS_STR(dw ? ((const struct dataway_conf *)dw->config)->url : NULL, "https://remora",
           "REMORA_OUTPUT_ beats ENV_DATAWAY");
    IS_STR(src_env(inst_setting(&cfg, "output.dataway", "url")), "REMORA_OUTPUT_DATAWAY_URL",
           "REMORA_OUTPUT_ source");
    IS_INT(warns.count, 0, "no warnings");
    config_release(&cfg);
}

static void test_enabled_inputs(void)
{
    struct config cfg;
    char *env[] = {"ENV_DEFAULT_ENABLED_INPUTS=self, cpu", NULL};
    int rc = load_text(&cfg, "[input.ecs_fargate]\ninterval = 5s\n[input.ecs.b]\n", env);
    IS_INT(rc, 0, "ENV_DEFAULT_ENABLED_INPUTS loads");
    IS_INT(cfg.agent.enabled_inputs_set, 1, "enabled_inputs_set");
    IS_UINT(cfg.agent.enabled_inputs.count, 2, "enabled_inputs items");
    const struct cfg_instance *dk = find(&cfg, "input.dk");
    OK(dk != NULL, "listed by alias 'self'");
    IS_STR(dk ? dk->enabled_by.env : NULL, "ENV_DEFAULT_ENABLED_INPUTS", "enabled_by the list");
    OK(find(&cfg, "input.ecs_fargate") == NULL, "a configured input not listed does not run");
    OK(find(&cfg, "input.ecs_fargate.b") == NULL, "nor its labelled instance");
    CONTAINS(warns.text,
             "unknown input 'cpu' in ENV_DEFAULT_ENABLED_INPUTS; known inputs: dk, ecs_fargate",
             "unknown name warns with the known inputs");
    CONTAINS(warns.text, "input 'ecs_fargate' is configured (", "not-listed warning");
    IS_INT(warns.count, 2, "warned once per plugin");
    OK(find(&cfg, "output.file") != NULL, "default output still applies");
    config_release(&cfg);

    char *env_empty[] = {"ENV_DEFAULT_ENABLED_INPUTS=", NULL};
    IS_INT(load(&cfg, NULL, env_empty), 0, "empty ENV_DEFAULT_ENABLED_INPUTS loads");
    IS_INT(cfg.agent.enabled_inputs_set, 1, "empty list is set");
    IS_UINT(cfg.agent.enabled_inputs.count, 0, "empty list has no items");
    OK(find(&cfg, "input.dk") == NULL, "empty list: no inputs, no defaults");
    config_release(&cfg);

    IS_INT(load_text(&cfg, "[agent]\nenabled_inputs = ecs\n", NULL), 0, "enabled_inputs key");
    OK(find(&cfg, "input.ecs_fargate") != NULL && find(&cfg, "input.dk") == NULL,
       "enabled_inputs from the file is exact too");
    config_release(&cfg);
}

static void test_env_only(void)
{
    struct config cfg;
    char *env[] = {"REMORA_OUTPUT_FILE_PATH=/tmp/out.json",
                   "REMORA_INPUT_ECS_FARGATE_INTERVAL=5s",
                   "REMORA_INPUT_DK_INTERVALL=5s",
                   "REMORA_AGENT_LOG_LEVL=debug",
                   "REMORA_CONFIG=/elsewhere",
                   "HOME=/root",
                   NULL};
    IS_INT(load(&cfg, NULL, env), 0, "env-only config loads");
    const struct cfg_instance *f = find(&cfg, "output.file");
    OK(f && f->enabled_by.origin == CFG_ENV &&
           strcmp(f->enabled_by.env, "REMORA_OUTPUT_FILE_PATH") == 0,
       "REMORA_OUTPUT_FILE_PATH creates output.file");
    IS_STR(f ? ((const struct file_conf *)f->config)->path : NULL, "/tmp/out.json", "path set");
    const struct cfg_instance *e = find(&cfg, "input.ecs_fargate");
    IS_INT(e ? ((const struct ecs_conf *)e->config)->interval_ms : -1, 5000,
           "underscored plugin name resolved (ECS_FARGATE + INTERVAL)");
    OK(find(&cfg, "input.dk") == NULL, "an input configured by env: no default input");
    OK(find(&cfg, "output.dataway") == NULL, "dataway not enabled");
    CONTAINS(warns.text,
             "ignoring unknown variable 'REMORA_INPUT_DK_INTERVALL'; did you mean "
             "'REMORA_INPUT_DK_INTERVAL'?",
             "unknown REMORA_INPUT_ variable warns with the nearest");
    CONTAINS(warns.text, "'REMORA_AGENT_LOG_LEVL'; did you mean 'REMORA_AGENT_LOG_LEVEL'?",
             "unknown REMORA_AGENT_ variable warns");
    IS_INT(warns.count, 2, "REMORA_CONFIG and others are not warned about");
    config_release(&cfg);

    char *env_alias[] = {"REMORA_INPUT_ECS_INTERVAL=7s", "REMORA_INPUT_self_Interval=3s", NULL};
    IS_INT(load(&cfg, NULL, env_alias), 0, "alias variables load");
    e = find(&cfg, "input.ecs_fargate");
    IS_INT(e ? ((const struct ecs_conf *)e->config)->interval_ms : -1, 7000, "alias ECS");
    const struct cfg_instance *dk = find(&cfg, "input.dk");
    IS_INT(dk ? ((const struct dk_conf *)dk->config)->interval_ms : -1, 3000,
           "alias and key matched case-insensitively");
    config_release(&cfg);

    char *env_dw[] = {"ENV_DATAWAY=https://openway.example/v1?token=tkn_secret", NULL};
    IS_INT(load(&cfg, NULL, env_dw), 0, "ENABLES variable loads");
    const struct cfg_instance *dw = find(&cfg, "output.dataway");
    OK(dw && dw->enabled_by.origin == CFG_ENV && strcmp(dw->enabled_by.env, "ENV_DATAWAY") == 0,
       "ENV_DATAWAY (RMR_OPT_ENABLES) creates output.dataway");
    OK(find(&cfg, "output.file") == NULL, "so no default output");
    OK(find(&cfg, "input.dk") != NULL, "default input");
    config_release(&cfg);

    char *env_on[] = {"ECS_FARGATE=true", NULL};
    IS_INT(load(&cfg, NULL, env_on), 0, "enable_env true loads");
    e = find(&cfg, "input.ecs_fargate");
    OK(e && strcmp(e->enabled_by.env, "ECS_FARGATE") == 0, "ECS_FARGATE=true creates the input");
    OK(find(&cfg, "input.dk") == NULL, "no default input then");
    config_release(&cfg);

    char *env_off[] = {"ECS_FARGATE=false", "ENV_ECS_FARGATE=maybe", NULL};
    IS_INT(load(&cfg, NULL, env_off), 0, "enable_env false loads");
    OK(find(&cfg, "input.ecs_fargate") == NULL, "ECS_FARGATE=false does not");
    OK(find(&cfg, "input.dk") != NULL, "default input instead");
    CONTAINS(warns.text, "ignoring ENV_ECS_FARGATE: expected true or false", "bad bool warns");
    config_release(&cfg);

    char *env_on2[] = {"ENV_ECS_FARGATE=on", NULL};
    IS_INT(load(&cfg, NULL, env_on2), 0, "second enable_env variable");
    OK(find(&cfg, "input.ecs_fargate") != NULL, "ENV_ECS_FARGATE=on creates the input");
    config_release(&cfg);

    /* A variable applies to every instance of NAME and creates none when one exists. */
    char *env_lab[] = {"REMORA_OUTPUT_FILE_PATH=/x", NULL};
    IS_INT(load_text(&cfg, "[output.file.audit]\n[output.file.b]\npath = /b\n", env_lab), 0,
           "labelled + env loads");
    IS_UINT(cfg.ninstances, 3, "no unlabelled instance added");
    f = find(&cfg, "output.file.audit");
    IS_STR(f ? ((const struct file_conf *)f->config)->path : NULL, "/x", "applies to audit");
    f = find(&cfg, "output.file.b");
    IS_STR(f ? ((const struct file_conf *)f->config)->path : NULL, "/x", "and beats the file");
    config_release(&cfg);
}

static void test_defaults(void)
{
    struct config cfg;
    IS_INT(load(&cfg, NULL, NULL), 0, "nothing configured loads");
    IS_UINT(cfg.ninstances, 2, "default input and output");
    const struct cfg_instance *dk = find(&cfg, "input.dk");
    OK(dk && dk->enabled_by.origin == CFG_DEFAULT, "input.dk by default");
    OK(find(&cfg, "output.file") != NULL, "output.file by default");
    OK(cfg.nentries == 0 && cfg.path == NULL, "no file");
    config_release(&cfg);

    IS_INT(config_read(&cfg, NULL, NULL, err, sizeof err), 0, "read");
    memset(&warns, 0, sizeof warns);
    IS_INT(config_resolve(&cfg, plugins, NPLUGINS, "dk,nosuch", "kafka", on_warn, &warns, err,
                          sizeof err),
           0, "defaults not loaded: resolve ok");
    CONTAINS(warns.text, "default input 'nosuch' is not loaded; skipping it", "input warning");
    CONTAINS(warns.text, "default output 'kafka' is not loaded", "output warning");
    IS_UINT(cfg.ninstances, 1, "only dk");
    IS_INT(config_resolve(&cfg, plugins, NPLUGINS, "dk", "file", NULL, NULL, err, sizeof err),
           RMR_EINVAL, "resolve twice is refused");
    config_release(&cfg);

    struct config zero;
    memset(&zero, 0, sizeof zero);
    config_release(&zero);
    OK(1, "release of a zeroed config");
}

static void test_tags_env(void)
{
    struct config cfg;
    char *env[] = {"ENV_GLOBAL_HOST_TAGS=host=h1",
                   "ENV_GLOBAL_TAGS=b=c,d:e",
                   "DD_TAGS=team:x env:old  bare",
                   "DD_ENV=prod",
                   "DD_SERVICE=svc",
                   "DD_VERSION=",
                   NULL};
    IS_INT(load_text(&cfg, "[agent]\nglobal_tags = f=g\n", env), 0, "tag variables load");
    const struct rmr_taglist *g = &cfg.agent.global_tags;
    IS_UINT(g->count, 3, "global tags merged from both variables (file replaced)");
    OK(tag_is(g, 0, "host", "h1") && tag_is(g, 1, "b", "c") && tag_is(g, 2, "d", "e"),
       "global tag values");
    IS_STR(src_env(agent_setting(&cfg, "global_tags")), "ENV_GLOBAL_HOST_TAGS,ENV_GLOBAL_TAGS",
           "merged source names both");
    const struct rmr_taglist *d = &cfg.agent.dd_tags;
    IS_UINT(d->count, 4, "dd tags: team, bare, env, service");
    OK(tag_is(d, 0, "team", "x") && tag_is(d, 1, "bare", "") && tag_is(d, 2, "env", "prod") &&
           tag_is(d, 3, "service", "svc"),
       "DD_ENV replaces env:old; empty DD_VERSION adds nothing");
    IS_STR(cfg.agent.dd_env, "prod", "dd_env");
    OK(cfg.agent.dd_version == NULL, "empty DD_VERSION means unset");
    config_release(&cfg);

    char *env_in[] = {"REMORA_INPUT_DK_TAGS=a:1", NULL};
    IS_INT(load(&cfg, NULL, env_in), 0, "common tags from env");
    const struct cfg_instance *dk = find(&cfg, "input.dk");
    OK(dk && tag_is(&dk->common.tags, 0, "a", "1"), "input common tags");
    config_release(&cfg);
}

static void test_print(void)
{
    struct config cfg;
    char *env[] = {"ENV_DATAWAY=https://openway.example/v1?token=tkn_secret", "DD_TAGS=a:b", NULL};
    IS_INT(load_text(&cfg,
                     "[agent]\nlog_level = warn\n[input.dk]\ninterval = 30s\n[input.dk.two]\n",
                     env),
           0, "print config loads");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print(&cfg, f);
    fclose(f);
    CONTAINS(buf, "[agent]\n", "agent section");
    CONTAINS(buf, "log_level = warn", "agent value");
    CONTAINS(buf, "remora.conf:2\n", "file source");
    CONTAINS(buf, "log_format = text                       # default\n", "default source aligned");
    CONTAINS(buf, "dd_tags = a:b", "env value");
    CONTAINS(buf, "# env DD_TAGS\n", "env source");
    CONTAINS(buf, "# hostname = (unset)\n", "unset option");
    CONTAINS(buf, "[input.dk]\n", "instance section");
    CONTAINS(buf, "[input.dk.two]\n", "labelled instance section");
    CONTAINS(buf, "interval = 30s", "instance value");
    CONTAINS(buf, "[output.dataway]\n", "dataway section");
    CONTAINS(buf, "# enabled by env ENV_DATAWAY\n[output.dataway]", "enabled_by comment");
    CONTAINS(buf, "url = <redacted>", "secret redacted");
    CONTAINS(buf, "# env ENV_DATAWAY\n", "secret's source shown");
    OK(buf && strstr(buf, "tkn_secret") == NULL, "secret never printed");
    CONTAINS(buf, "batch_records = 1000", "output common option");
    const char *a = buf ? strstr(buf, "[input.dk]") : NULL;
    const char *b = buf ? strstr(buf, "[output.dataway]") : NULL;
    OK(a && b && a < b, "inputs before outputs");
    if (tap_failed)
        printf("# ---\n%s# ---\n", buf ? buf : "");
    free(buf);
    config_release(&cfg);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/remora-test-config-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_sizes();
    test_durations();
    test_bools_tags_nearest();
    test_fill();
    test_file_basic();
    test_empty_and_disabled();
    test_errors();
    test_precedence();
    test_enabled_inputs();
    test_env_only();
    test_defaults();
    test_tags_env();
    test_print();
    test_conf_d();
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
