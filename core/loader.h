/* core/loader: finds plugins (.so files in the plugin directory, and builtins linked into the
 * binary), checks them against this host's ABI and keeps host-owned copies of their
 * descriptors. Plugins are never dlclose()d: their code stays mapped until exit.
 * Thread: the loop thread (startup only). */
#ifndef REMORA_CORE_LOADER_H
#define REMORA_CORE_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

#include "config/config.h"

/* The 1.0 size of the descriptor: the smallest a plugin may declare. */
#define LOADER_DESC_MIN_SIZE RMR_PLUGIN_SIZE_1_0

struct loaded_plugin {
    struct rmr_plugin desc; /* zeroed, then min(plugin's struct_size, ours) bytes copied */
    char *path;             /* the .so path or "builtin" */
};

/* A plugin the loader refused, kept so `remora plugins` can say why. */
struct refused_plugin {
    char *path;
    char *reason;
};

struct registry {
    struct loaded_plugin *plugins;
    uint32_t count;
    uint32_t cap;
    struct refused_plugin *refused;
    uint32_t nrefused;
    uint32_t refused_cap;
    struct cfg_plugin *cfg; /* views for config_resolve, rebuilt by registry_cfg_plugins */
};

/* 1 when name matches [a-z0-9_]+ and is at most 64 bytes (plugin_check.c). */
int plugin_name_valid(const char *name);

/* Checks a descriptor as the loader does and copies it into out. Returns 0, or RMR_EABI /
 * RMR_EINVAL with one sentence in why that names path, both ABI versions and the fix. */
int loader_check(const struct rmr_plugin *desc, const char *path, struct rmr_plugin *out, char *why,
                 size_t whylen);

/* Loads every "*.so" of dir in name order. A refused plugin is recorded (and logged as an
 * error) and the others still load; a refused directory (world-writable, missing) refuses
 * everything in it. Returns 0 or RMR_ENOMEM. */
int loader_load_dir(struct registry *reg, const char *dir);
/* Loads one .so file. Returns 0, or an error after recording the refusal. */
int loader_load_file(struct registry *reg, const char *path);
/* Registers the plugins linked into the binary (-Dbuiltin), through the same checks. */
int loader_load_builtins(struct registry *reg);

const struct loaded_plugin *registry_find(const struct registry *reg, uint32_t kind,
                                          const char *name);
/* The registry as config_resolve wants it; valid until the next load. */
const struct cfg_plugin *registry_cfg_plugins(struct registry *reg);
void registry_release(struct registry *reg);

#endif
