#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "self/log.h"

typedef const struct rmr_plugin *(*describe_fn)(void);

static int refuse(struct registry *reg, const char *path, const char *reason)
{
    log_error("%s", reason);
    if (reg->nrefused == reg->refused_cap) {
        uint32_t cap = reg->refused_cap ? reg->refused_cap * 2 : 4;
        struct refused_plugin *r = realloc(reg->refused, cap * sizeof *r);
        if (r == NULL)
            return RMR_ENOMEM;
        reg->refused = r;
        reg->refused_cap = cap;
    }
    struct refused_plugin *r = &reg->refused[reg->nrefused];
    r->path = strdup(path);
    r->reason = strdup(reason);
    if (r->path == NULL || r->reason == NULL) {
        free(r->path);
        free(r->reason);
        return RMR_ENOMEM;
    }
    reg->nrefused++;
    return 0;
}

static int add_plugin(struct registry *reg, const struct rmr_plugin *desc, const char *path)
{
    char why[512];
    struct rmr_plugin copy;
    int rc = loader_check(desc, path, &copy, why, sizeof why);
    if (rc < 0) {
        int r2 = refuse(reg, path, why);
        return r2 < 0 ? r2 : rc;
    }
    const struct loaded_plugin *dup = registry_find(reg, copy.kind, copy.name);
    if (dup != NULL) {
        snprintf(why, sizeof why, "refusing plugin '%s': %s '%s' is already loaded from '%s'", path,
                 copy.kind == RMR_KIND_INPUT ? "input" : "output", copy.name, dup->path);
        int r2 = refuse(reg, path, why);
        return r2 < 0 ? r2 : RMR_EEXIST;
    }
    if (reg->count == reg->cap) {
        uint32_t cap = reg->cap ? reg->cap * 2 : 8;
        struct loaded_plugin *p = realloc(reg->plugins, cap * sizeof *p);
        if (p == NULL)
            return RMR_ENOMEM;
        reg->plugins = p;
        reg->cap = cap;
    }
    reg->plugins[reg->count].desc = copy;
    reg->plugins[reg->count].path = strdup(path);
    if (reg->plugins[reg->count].path == NULL)
        return RMR_ENOMEM;
    reg->count++;
    return 0;
}

/* A plugin runs with the agent's privileges, so a file or directory that anybody could
 * replace is refused, and so is a file owned by another unprivileged user. */
static int check_mode(const char *path, const struct stat *st, int is_dir, char *why, size_t whylen)
{
    if (st->st_mode & S_IWOTH) {
        snprintf(why, whylen,
                 "refusing plugin %s '%s': it is writable by everyone; run chmod o-w '%s'",
                 is_dir ? "directory" : "file", path, path);
        return RMR_EPERM;
    }
    if (st->st_uid != 0 && st->st_uid != geteuid()) {
        snprintf(why, whylen,
                 "refusing plugin %s '%s': it is owned by uid %u, neither root nor this user",
                 is_dir ? "directory" : "file", path, (unsigned)st->st_uid);
        return RMR_EPERM;
    }
    return 0;
}

int loader_load_file(struct registry *reg, const char *path)
{
    char why[512];
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, sizeof why, "refusing plugin '%s': %s", path, strerror(errno));
        int r2 = refuse(reg, path, why);
        return r2 < 0 ? r2 : RMR_ENOENT;
    }
    int rc = check_mode(path, &st, 0, why, sizeof why);
    if (rc < 0) {
        int r2 = refuse(reg, path, why);
        return r2 < 0 ? r2 : rc;
    }
    /* RTLD_NOW: an unresolved symbol fails here, not at 3 a.m.; RTLD_LOCAL: plugins cannot
     * interpose each other's symbols. */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        snprintf(why, sizeof why, "refusing plugin '%s': %s", path, dlerror());
        int r2 = refuse(reg, path, why);
        return r2 < 0 ? r2 : RMR_EINVAL;
    }
    describe_fn fn;
    *(void **)&fn = dlsym(dl, RMR_PLUGIN_SYMBOL);
    if (fn == NULL) {
        snprintf(why, sizeof why,
                 "refusing plugin '%s': it exports no %s(); build it with RMR_PLUGIN_DEFINE()",
                 path, RMR_PLUGIN_SYMBOL);
        int r2 = refuse(reg, path, why);
        return r2 < 0 ? r2 : RMR_EINVAL;
    }
    /* The handle is deliberately never closed: descriptors and callbacks point into it. */
    return add_plugin(reg, fn(), path);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int loader_load_dir(struct registry *reg, const char *dir)
{
    char why[512];
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, sizeof why, "cannot read plugin directory '%s': %s", dir,
                 errno ? strerror(errno) : "not a directory");
        return refuse(reg, dir, why);
    }
    int rc = check_mode(dir, &st, 1, why, sizeof why);
    if (rc < 0)
        return refuse(reg, dir, why);

    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(why, sizeof why, "cannot read plugin directory '%s': %s", dir, strerror(errno));
        return refuse(reg, dir, why);
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (nn == NULL) {
                rc = RMR_ENOMEM;
                goto done;
            }
            names = nn;
        }
        if ((names[n] = strdup(e->d_name)) == NULL) {
            rc = RMR_ENOMEM;
            goto done;
        }
        n++;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int r = loader_load_file(reg, path);
        if (r == RMR_ENOMEM) {
            rc = r;
            goto done;
        }
    }
done:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

#define RMR_B(name) const struct rmr_plugin *rmr_plugin_describe_##name(void);
RMR_BUILTINS
#undef RMR_B

/* The plugins linked in with -Dbuiltin, from the RMR_BUILTINS list the build defines. */
#define RMR_B(name) rmr_plugin_describe_##name,
static const describe_fn builtins[] = {RMR_BUILTINS NULL};
#undef RMR_B

int loader_load_builtins(struct registry *reg)
{
    /* A refused builtin is recorded like a refused file; only running out of memory fails. */
    for (size_t i = 0; builtins[i] != NULL; i++)
        if (add_plugin(reg, builtins[i](), "builtin") == RMR_ENOMEM)
            return RMR_ENOMEM;
    return 0;
}

const struct loaded_plugin *registry_find(const struct registry *reg, uint32_t kind,
                                          const char *name)
{
    for (uint32_t i = 0; i < reg->count; i++)
        if (reg->plugins[i].desc.kind == kind && strcmp(reg->plugins[i].desc.name, name) == 0)
            return &reg->plugins[i];
    return NULL;
}

const struct cfg_plugin *registry_cfg_plugins(struct registry *reg)
{
    free(reg->cfg);
    reg->cfg = calloc(reg->count ? reg->count : 1, sizeof *reg->cfg);
    if (reg->cfg == NULL)
        return NULL;
    for (uint32_t i = 0; i < reg->count; i++) {
        reg->cfg[i].desc = &reg->plugins[i].desc;
        reg->cfg[i].path = reg->plugins[i].path;
    }
    return reg->cfg;
}

void registry_release(struct registry *reg)
{
    for (uint32_t i = 0; i < reg->count; i++)
        free(reg->plugins[i].path);
    for (uint32_t i = 0; i < reg->nrefused; i++) {
        free(reg->refused[i].path);
        free(reg->refused[i].reason);
    }
    free(reg->plugins);
    free(reg->refused);
    free(reg->cfg);
    memset(reg, 0, sizeof *reg);
}
