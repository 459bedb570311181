/* core/config: INI files (inih) + conf.d + environment, typed by each plugin's option schema.
 *
 * Two phases, because the plugin directory itself is configurable:
 *   1. config_read(): parse the main file and the .conf files of its conf.d/ into raw entries, and
 * read the [agent] section (typed by agent_options) with its environment overrides.
 *   2. config_resolve(): with the loaded plugins' descriptors, decide which instances run,
 *      parse every value by the option schemas, apply environment overrides and defaults, and
 *      fill each instance's config struct.
 * Errors name file:line, section and key and suggest the nearest valid key; they are written to
 * the caller's buffer, and the functions return RMR_ECONFIG.
 *
 * No libuv here: the fake host in sdk/testing links this module too.
 */
#ifndef REMORA_CORE_CONFIG_H
#define REMORA_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <remora/plugin.h>

/* Where a value came from. */
enum cfg_origin { CFG_DEFAULT = 0, CFG_FILE = 1, CFG_ENV = 2 };

struct cfg_source {
    uint32_t origin;  /* enum cfg_origin */
    uint32_t line;    /* CFG_FILE */
    const char *file; /* CFG_FILE: path as given; owned by the config */
    const char *env;  /* CFG_ENV: the variable's name; owned by the config */
};

/* One raw key = value from a file. A section header is recorded too, as an entry with key ""
 * and value "" (used = 1), so that an empty section such as [input.dk] still creates its
 * instance. Indented lines continue the previous key and are joined to its value with ','
 * (only LIST and TAGS options accept them; resolve rejects them for other types). A later
 * duplicate key wins; conf.d files are read after the main file. Besides ';', a '#' that
 * follows whitespace starts an inline comment. */
struct cfg_entry {
    char *section; /* "agent", "input.dk", "output.file.audit" */
    char *key;
    char *value;
    struct cfg_source src;
    uint32_t used; /* set by resolve when a schema consumed it */
};

/* The agent's own settings, filled from [agent] through agent_options. */
struct agent_config {
    int32_t log_level;         /* enum rmr_log_level (error=1 .. debug=4): config_read() adds 1
                                * to the index of choices error|warn|info|debug */
    int32_t log_format;        /* 0 text, 1 json */
    const char *plugin_dir;    /* NULL: next to the binary, then the built-in default */
    const char *hostname;      /* NULL: gethostname() */
    int64_t shutdown_grace_ms; /* outputs drain this long after SIGTERM */
    int64_t log_rate_limit_ms; /* identical log lines at most once per this window */
    struct rmr_taglist tags;   /* [agent] tags */
    struct rmr_strlist enabled_inputs; /* ENV_DEFAULT_ENABLED_INPUTS; count 0 when unset */
    int32_t enabled_inputs_set;     /* 1 when ENV_DEFAULT_ENABLED_INPUTS (or the key) was given */
    struct rmr_taglist global_tags; /* ENV_GLOBAL_TAGS, ENV_GLOBAL_HOST_TAGS */
    struct rmr_taglist dd_tags;     /* DD_TAGS, plus env/service/version from DD_ENV, ...
                                     * (which replace those keys given in DD_TAGS) */
    const char *dd_env;
    const char *dd_service;
    const char *dd_version;
    const char *http_listen; /* "127.0.0.1:9529"; "off" or "none": no shared listener */
    uint64_t http_max_header_bytes;
    uint64_t http_max_body_bytes;
    uint64_t http_max_decoded_bytes;
    int64_t http_header_timeout_ms;
    int64_t http_body_timeout_ms;
    int64_t http_idle_timeout_ms;
    int64_t http_max_connections;
    const char *ca_file;
    int32_t tls_insecure;
    int32_t reserved_;
    int64_t connect_timeout_ms;
};

/* Keys the core handles for every instance of a kind, never in plugin schemas. */
struct instance_common {
    int32_t enabled;          /* enabled = false keeps a configured instance off */
    struct rmr_taglist tags;  /* extra tags on every record of this instance (inputs) */
    int64_t batch_records;    /* outputs: encode after this many records */
    uint64_t batch_bytes;     /* outputs: or after this many bytes */
    int64_t batch_timeout_ms; /* outputs: or when the oldest batch is this old */
    uint64_t queue_bytes;     /* outputs: bound of payloads waiting for delivery */
    int32_t when_full;        /* outputs: enum when_full */
    int32_t reserved_;
    int64_t max_in_flight;      /* outputs: requests at once */
    int64_t request_timeout_ms; /* outputs */
    int64_t retry_initial_ms;   /* outputs: backoff base */
    int64_t retry_max_ms;       /* outputs: backoff cap */
    int64_t halt_probe_ms;      /* outputs: probe interval while halted */
};

enum when_full { WHEN_FULL_AUTO = 0, WHEN_FULL_BLOCK = 1, WHEN_FULL_DROP_OLDEST = 2 };

/* Agent options (schema for [agent]), and the common instance options per kind. Each table
 * ends with RMR_OPT_END. Offsets refer to struct agent_config / struct instance_common. */
extern const struct rmr_option agent_options[];
extern const struct rmr_option input_common_options[];
extern const struct rmr_option output_common_options[];

/* The effective value of one option, for check-config and status. */
struct cfg_setting {
    const struct rmr_option *opt;
    char *text; /* the value as text (secrets kept; printing redacts them), NULL when unset */
    struct cfg_source src;
};

/* A plugin as config sees it: a descriptor after the loader's checks. */
struct cfg_plugin {
    const struct rmr_plugin *desc;
    const char *path; /* the .so, or "builtin" */
};

struct cfg_instance {
    uint32_t kind; /* enum rmr_plugin_kind */
    char *name;    /* "input.dk" or "input.dk.label" */
    char *label;   /* NULL or "label" */
    const struct cfg_plugin *plugin;
    void *config; /* desc->config_size bytes filled per the schema; owned */
    struct instance_common common;
    struct cfg_setting *settings; /* plugin options, then common options */
    uint32_t nsettings;
    uint32_t reserved_;
    struct cfg_source enabled_by; /* file section line, env variable, or default */
};

struct config {
    char *path; /* main file, NULL when none (embedded default) */
    struct cfg_entry *entries;
    uint32_t nentries;
    uint32_t ninstances;
    struct cfg_instance *instances; /* inputs first, then outputs, in a stable order */
    struct agent_config agent;
    struct cfg_setting *agent_settings;
    uint32_t nagent_settings;
    uint32_t reserved_;
    char **env;              /* a private copy of the environment the config was read with */
    struct cfg_store *store; /* owned strings and arrays behind every pointer above */
};

/* Reads path (NULL: no file, the embedded default; a missing explicit path is an error),
 * its conf.d/ (files ending in .conf, in name order), and the environment envp (NULL-terminated,
 * borrowed; copied). Fills cfg->agent. cfg is overwritten (zeroed first); on failure it is left
 * zeroed, so config_release() is optional then. Precedence for every value: default < file <
 * the option's ecosystem variables (rmr_option.env) < REMORA_* variable. Of several ecosystem
 * variables the first one set wins, except for LIST and TAGS options, where all that are set
 * are merged in order (ENV_GLOBAL_HOST_TAGS + ENV_GLOBAL_TAGS). An empty value counts as set
 * (an empty list or tag set), except that an empty STRING value means the option's default
 * (NULL when none) and an empty required value is missing. A line longer than inih's buffer (199
 * characters) is an error. Errors: RMR_ECONFIG with a message in err, RMR_ENOMEM. */
int config_read(struct config *cfg, const char *path, char *const *envp, char *err, size_t errlen);

/* Decides the instances and fills their configs (see the file comment). plugins is borrowed
 * and must outlive cfg. Warnings (an unknown name in ENV_DEFAULT_ENABLED_INPUTS, an unknown
 * REMORA_* variable) go to warn(arg, message) and do not fail.
 * Rules:
 *  - a file section [input.NAME] / [input.NAME.LABEL] / [output.NAME...] creates an instance;
 *    NAME may be a plugin alias; enabled = false keeps it off;
 *  - REMORA_INPUT_<NAME>_<KEY> / REMORA_OUTPUT_<NAME>_<KEY> (NAME and KEY upper-cased)
 *    override KEY on every instance of NAME, and create the unlabelled instance when NAME has
 *    no instance at all; NAME may be an alias; as NAME and KEY may both contain '_', the
 *    longest plugin name followed by a valid key wins;
 *  - an option's own variables (rmr_option.env) override it likewise; with RMR_OPT_ENABLES
 *    they create the instance too; a plugin's enable_env variables with a true value create it;
 *  - ENV_DEFAULT_ENABLED_INPUTS, when set, is the exact list of inputs that run (dk, self, ...
 *    by name or alias; an unknown name is a warning naming the known inputs);
 *  - with no input configured anywhere, the plugins listed in default_inputs run (a build
 *    option; "dk" by default);
 *  - with no output configured anywhere, the output named by default_output runs;
 *  - default_inputs / default_output are comma lists; a name not among plugins is skipped with
 *    a warning.
 * Instances are sorted by kind (inputs first), plugin name, then label (unlabelled first).
 * Call once per config_read(); on failure cfg keeps no instances (config_release() still
 * needed). Instances with enabled = false are kept (common.enabled == 0) for check-config.
 * Errors: RMR_ECONFIG naming file:line, section and key (unknown key with the nearest key
 * suggested, bad type or range, missing required key, unknown plugin with the nearest name),
 * RMR_ENOMEM. */
int config_resolve(struct config *cfg, const struct cfg_plugin *plugins, uint32_t nplugins,
                   const char *default_inputs, const char *default_output,
                   void (*warn)(void *arg, const char *msg), void *warn_arg, char *err,
                   size_t errlen);

/* Frees everything. Safe on a zeroed or partially filled config. */
void config_release(struct config *cfg);

/* An owner of strings and arrays that config values point into. */
struct cfg_store;
struct cfg_store *cfg_store_new(void);
void cfg_store_free(struct cfg_store *store); /* NULL is a no-op */
char *cfg_store_strdup(struct cfg_store *store, const char *s);

/* Parses one value of an option's type into dst (the member at the option's offset), with
 * strings and arrays allocated from store. Errors: RMR_EINVAL / RMR_ERANGE with a short reason
 * ("expected a duration like 10s") in why. */
int config_parse_value(struct cfg_store *store, const struct rmr_option *opt, const char *text,
                       void *dst, char *why, size_t whylen);

/* Fills the struct config (laid out per opts) from n key/value pairs, then defaults for every
 * option not given. An unknown key, a bad value or a missing required option fails with
 * RMR_ECONFIG and a message in err naming the key (and the nearest valid key). Used by
 * config_resolve() and by the fake host. */
int config_fill(struct cfg_store *store, const struct rmr_option *opts, void *config,
                const char *const *keys, const char *const *values, uint32_t n, char *err,
                size_t errlen);

/* Parses "k:v,k2:v2", "k=v k2=v2" (commas or spaces separate; ':' or '=' splits the first
 * occurrence; a bare word is a tag without value) into tags allocated from store. */
int config_parse_tags(struct cfg_store *store, const char *text, struct rmr_taglist *out);

/* Helpers also used by the CLI and tests. */
int config_parse_size(const char *text, uint64_t *out);       /* "64MiB" */
int config_parse_duration(const char *text, int64_t *out_ms); /* "1h30m", "250ms" */
int config_parse_bool(const char *text, int32_t *out);
/* The name from names (NULL-terminated) closest to word by edit distance, or NULL when none is
 * within a third of the word's length (at least 2). */
const char *config_nearest(const char *word, const char *const *names);

/* Prints the effective configuration as INI with each value's source as a comment and secrets
 * shown as "<redacted>", to the stream (a FILE *): [agent], then each instance preceded by a
 * "# enabled by SOURCE" line; "key = value   # default|FILE:LINE|env VAR"; an unset option
 * as "# key = (unset)"; control bytes in values as \xNN. */
void config_print(const struct config *cfg, void *stream);

#endif
