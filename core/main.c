/* remora: the command line.
 *
 *   remora [run] [-c FILE]              run the agent
 *   remora check-config [-c FILE]       print the effective configuration with sources
 *   remora plugins [--describe NAME]    list plugins, or one plugin's options
 *   remora status [--json]              a running agent's state as tables
 *   remora health                       exit 0 when every output is ok or retrying, else 1
 *   remora version
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "agent_run.h"
#include "cli_status.h"
#include "record/batch.h"
#include "self/log.h"

extern char **environ;

static const char usage[] =
    "usage: remora [run] [-c FILE]\n"
    "       remora check-config [-c FILE]\n"
    "       remora plugins [-c FILE] [--describe NAME]\n"
    "       remora status [-c FILE] [--address HOST:PORT] [--json]\n"
    "       remora health [-c FILE] [--address HOST:PORT]\n"
    "       remora version\n"
    "\n"
    "With no -c, remora reads $REMORA_CONFIG, else " REMORA_SYSCONFDIR "/remora/remora.conf when\n"
    "it exists, else runs its embedded default (the dk input to the file output on stdout).\n"
    "Environment variables (ENV_*, DD_*, REMORA_*) override files; see docs/CONFIG.md.\n";

static const char *default_config(void)
{
    const char *env = getenv("REMORA_CONFIG");
    if (env != NULL && env[0] != '\0')
        return env;
    static const char path[] = REMORA_SYSCONFDIR "/remora/remora.conf";
    struct stat st;
    return stat(path, &st) == 0 ? path : NULL;
}

static const char *type_name(uint32_t type)
{
    switch ((enum rmr_option_type)type) {
    case RMR_OPT_STRING: return "string";
    case RMR_OPT_INT: return "int";
    case RMR_OPT_BOOL: return "bool";
    case RMR_OPT_DOUBLE: return "double";
    case RMR_OPT_SIZE: return "size";
    case RMR_OPT_DURATION: return "duration";
    case RMR_OPT_ENUM: return "enum";
    case RMR_OPT_LIST: return "list";
    case RMR_OPT_TAGS: return "tags";
    }
    return "?";
}

static void print_options(const char *title, const struct rmr_option *opts)
{
    if (opts == NULL || opts->name == NULL)
        return;
    printf("\n%s:\n", title);
    for (const struct rmr_option *o = opts; o->name != NULL; o++) {
        char type[96];
        if (o->type == RMR_OPT_ENUM && o->choices != NULL)
            snprintf(type, sizeof type, "enum(%s)", o->choices);
        else
            snprintf(type, sizeof type, "%s", type_name(o->type));
        printf("  %-22s %-18s", o->name, type);
        if (o->flags & RMR_OPT_REQUIRED)
            printf(" required");
        else if (o->def != NULL)
            printf(" default %s", (o->flags & RMR_OPT_SECRET) ? "<redacted>"
                                  : o->def[0]                 ? o->def
                                                              : "\"\"");
        if (o->flags & RMR_OPT_SECRET)
            printf(" secret");
        if (o->max > o->min)
            printf(" range [%g, %g]", o->min, o->max);
        printf("\n      %s\n", o->help ? o->help : "");
        if (o->env != NULL)
            printf("      environment: %s%s\n", o->env,
                   (o->flags & RMR_OPT_ENABLES) ? " (setting it enables the plugin)" : "");
    }
}

static const char *kind_word(uint32_t kind)
{
    return kind == RMR_KIND_INPUT ? "input" : "output";
}

static void upper(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < n; i++)
        dst[i] = (src[i] >= 'a' && src[i] <= 'z') ? (char)(src[i] - 32) : src[i];
    dst[i] = '\0';
}

static int describe(const struct registry *reg, const char *name)
{
    int found = 0;
    for (uint32_t i = 0; i < reg->count; i++) {
        const struct rmr_plugin *d = &reg->plugins[i].desc;
        if (strcmp(d->name, name) != 0)
            continue;
        found = 1;
        char up[80];
        upper(up, sizeof up, d->name);
        printf("%s %s %s (plugin ABI %u.%u)\n", kind_word(d->kind), d->name,
               d->version ? d->version : "?", d->abi_major, d->abi_minor);
        printf("  %s\n", d->description ? d->description : "");
        printf("  path: %s\n", reg->plugins[i].path);
        if (d->aliases != NULL)
            printf("  aliases: %s\n", d->aliases);
        if (d->enable_env != NULL)
            printf("  enabled by: %s (true/on)\n", d->enable_env);
        if (d->kind == RMR_KIND_OUTPUT) {
            printf("  record kinds:");
            for (uint32_t k = 1; k <= RMR_REC_KIND_MAX; k++)
                if (d->accepts & RMR_REC_BIT(k))
                    printf(" %s", record_kind_name(k));
            printf("\n  schemas: schema-less");
            for (const char *const *s = d->schemas; s != NULL && *s != NULL; s++)
                printf(", %s", *s);
            printf("\n");
        }
        printf("  section: [%s.%s] or [%s.%s.LABEL]; variables: REMORA_%s_%s_<KEY>\n",
               kind_word(d->kind), d->name, kind_word(d->kind), d->name,
               d->kind == RMR_KIND_INPUT ? "INPUT" : "OUTPUT", up);
        print_options("options", d->options);
        print_options("common options (every instance of this kind)",
                      d->kind == RMR_KIND_INPUT ? input_common_options : output_common_options);
        printf("\n");
    }
    if (!found) {
        const char *names[256];
        uint32_t n = 0;
        for (uint32_t i = 0; i < reg->count && n < 255; i++)
            names[n++] = reg->plugins[i].desc.name;
        names[n] = NULL;
        const char *near = config_nearest(name, names);
        fprintf(stderr, "remora: no plugin named '%s'%s%s%s\n", name,
                near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
        return 1;
    }
    return 0;
}

static int list_plugins(const struct registry *reg)
{
    printf("%-7s %-14s %-9s %-5s %s\n", "KIND", "NAME", "VERSION", "ABI", "DESCRIPTION");
    for (int pass = 0; pass < 2; pass++) {
        uint32_t kind = pass == 0 ? RMR_KIND_INPUT : RMR_KIND_OUTPUT;
        for (uint32_t i = 0; i < reg->count; i++) {
            const struct rmr_plugin *d = &reg->plugins[i].desc;
            if (d->kind != kind)
                continue;
            char abi[16];
            snprintf(abi, sizeof abi, "%u.%u", d->abi_major, d->abi_minor);
            printf("%-7s %-14s %-9s %-5s %s%s%s\n", kind_word(d->kind), d->name,
                   d->version ? d->version : "?", abi, d->description ? d->description : "",
                   strcmp(reg->plugins[i].path, "builtin") == 0 ? " [builtin]" : "",
                   d->aliases ? "" : "");
        }
    }
    for (uint32_t i = 0; i < reg->nrefused; i++)
        printf("refused %s\n", reg->refused[i].reason);
    return reg->nrefused > 0 ? 1 : 0;
}

/* glibc's allocator, tuned for a sidecar that is charged for its resident memory. Every thread
 * that allocates would otherwise get its own arena (the datagram readers, the thread pool),
 * each keeping the memory it freed; and the mmap threshold would rise to the largest block
 * freed, so a flush's multi-megabyte batches and payloads come back from the heap, where a
 * freed block stays resident. Two arenas and a fixed threshold hand those blocks back to the
 * kernel when they are freed. MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_ and any
 * GLIBC_TUNABLES setting still win (mallopt would override them). */
static void tune_malloc(void)
{
#ifdef __GLIBC__
    if (getenv("GLIBC_TUNABLES") != NULL)
        return;
    if (getenv("MALLOC_ARENA_MAX") == NULL)
        mallopt(M_ARENA_MAX, 2);
    if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL)
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
}

int main(int argc, char **argv)
{
    tune_malloc();
    const char *cmd = "run";
    const char *config = NULL;
    const char *describe_name = NULL;
    const char *address = NULL;
    int config_given = 0, json = 0;

    int i = 1;
    if (i < argc && argv[i][0] != '-')
        cmd = argv[i++];
    for (; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
            config_given = 1;
        } else if (strcmp(argv[i], "--describe") == 0 && i + 1 < argc) {
            describe_name = argv[++i];
        } else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
            address = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "remora: unknown argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!config_given)
        config = default_config();

    if (strcmp(cmd, "version") == 0) {
        printf("remora %s (plugin ABI %d.%d)\n", REMORA_VERSION, RMR_ABI_MAJOR, RMR_ABI_MINOR);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "health") == 0) {
        struct config cfg;
        char err[1024];
        int rc = config_read(&cfg, config, environ, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "remora: %s\n", rc == RMR_ECONFIG ? err : rmr_strerror(rc));
            return 2;
        }
        const char *listen = address != NULL ? address : cfg.agent.http_listen;
        if (listen == NULL || strcmp(listen, "off") == 0 || strcmp(listen, "none") == 0) {
            fprintf(stderr, "remora: the agent's HTTP listener is off ([agent] http_listen); "
                            "give --address HOST:PORT\n");
            config_release(&cfg);
            return 2;
        }
        rc = strcmp(cmd, "status") == 0 ? cli_status(listen, json) : cli_health(listen);
        config_release(&cfg);
        return rc;
    }
    /* Keep the thread pool small: a sidecar often has a quarter of a vCPU. */
    setenv("UV_THREADPOOL_SIZE", "2", 0);

    struct agent *a = calloc(1, sizeof *a);
    if (a == NULL)
        return 1;
    int rc;
    if (strcmp(cmd, "plugins") == 0) {
        rc = agent_setup(a, config, environ, 0);
        if (rc == 0)
            rc = describe_name ? describe(&a->reg, describe_name) : list_plugins(&a->reg);
        else
            rc = 2;
    } else if (strcmp(cmd, "check-config") == 0) {
        rc = agent_setup(a, config, environ, 1);
        if (rc == 0) {
            config_print(&a->cfg, stdout);
            fflush(stdout);
        } else {
            rc = 2;
        }
    } else if (strcmp(cmd, "run") == 0) {
        rc = agent_setup(a, config, environ, 1);
        rc = rc == 0 ? agent_run(a) : 2;
    } else {
        fprintf(stderr, "remora: unknown command '%s'\n%s", cmd, usage);
        rc = 2;
    }
    agent_release(a);
    free(a);
    return rc;
}
