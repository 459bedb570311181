/* plugins/lib/ecsmeta: parsing /task and /task/stats (see ecsmeta.h and README.md).
 *
 * Everything here is pure: no host calls, no globals, so the unit test and the fuzz target
 * drive it directly. Wire data is untrusted: every lookup checks the JSON type, a value of the
 * wrong type counts as absent, and only a body that is not a JSON object is refused as a whole
 * (a /task without its anchors is parsed, and says what it lacked in ecs_task.missing).
 */
#include "ecsmeta.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

/* The cgroup "no value" mark: the kernel reports unset limits as PAGE_COUNTER_MAX pages, which
 * is at or above this (Datadog's CGROUP_NO_VALUE, 0x7FFFFFFFFFFFF000). */
#define CGROUP_NO_VALUE UINT64_C(0x7FFFFFFFFFFFF000)
/* Datadog's container collector treats a memory limit at or above 2^62 as unset
 * (ecsUnsetMemoryLimit): v1 reports 9223372036854771712, v2 18446744073709551615. */
#define UNSET_MEMORY_LIMIT (UINT64_C(1) << 62)

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- big integers ------------------------------------------------------------------------- *
 *
 * jansson 2.14 stores integers as int64 and refuses the whole document ("too big integer") when
 * one literal is beyond it, and cgroup v2 reports an unlimited memory limit as
 * 18446744073709551615. JSON_DECODE_INT_AS_REAL would lose precision on every ns counter above
 * 2^53, so instead each integer literal that does not fit int64 gets ".0" appended before
 * parsing: jansson then reads that one value as a real (>= 2^63, so a sentinel anyway) and all
 * others stay exact integers. */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_number_char(char c)
{
    return is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

/* Whether the integer literal s[0..n) ('-'? digits, no leading zero) is outside int64. */
static int int_too_big(const char *s, size_t n)
{
    int neg = s[0] == '-';
    const char *d = s + neg;
    size_t nd = n - (size_t)neg;
    if (nd < 19)
        return 0;
    if (nd > 19)
        return 1;
    return memcmp(d, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0;
}

/* Copies s to out (when out is not NULL) with ".0" after each integer literal, outside
 * strings, that int64 cannot hold. Returns how many there are. Only a lexer: jansson still
 * judges the syntax, and no rewrite turns invalid JSON into valid JSON. */
static size_t bigint_rewrite(const char *s, size_t len, char *out)
{
    size_t n = 0, o = 0, i = 0;
    int in_str = 0;
    while (i < len) {
        char c = s[i];
        size_t start = i;
        if (in_str) {
            i += (c == '\\' && i + 1 < len) ? 2 : 1;
            if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
            i++;
        } else if (c == '-' || is_digit(c)) {
            i += c == '-';
            size_t d0 = i;
            while (i < len && is_digit(s[i]))
                i++;
            size_t nd = i - d0;
            int integer = nd > 0 && !(i < len && (s[i] == '.' || s[i] == 'e' || s[i] == 'E'));
            int big = integer && !(s[d0] == '0' && nd > 1) && int_too_big(s + start, i - start);
            if (big) {
                if (out != NULL) {
                    memcpy(out + o, s + start, i - start);
                    memcpy(out + o + (i - start), ".0", 2);
                }
                o += i - start + 2;
                n++;
                continue;
            }
            /* The rest of a real (fraction, exponent) is skipped whole, so its digits are
             * never taken for an integer literal of their own. */
            while (i < len && is_number_char(s[i]))
                i++;
        } else {
            i++;
        }
        if (out != NULL)
            memcpy(out + o, s + start, i - start);
        o += i - start;
    }
    return n;
}

/* Parses a body into a JSON object. Returns the owned root, or NULL with the reason in err. */
static json_t *load_object(const char *json, size_t len, char *err, size_t errlen, int *rc)
{
    json_error_t jerr;
    json_t *root = NULL;
    *rc = RMR_EINVAL;
    if (json == NULL && len > 0) {
        set_err(err, errlen, "no body");
        return NULL;
    }
    if (json == NULL)
        json = "";
    size_t nbig = bigint_rewrite(json, len, NULL);
    if (nbig == 0) {
        root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    } else {
        if (len > (SIZE_MAX - 1) / 3) {
            set_err(err, errlen, "body too large");
            return NULL;
        }
        char *copy = malloc(len + 2 * nbig + 1);
        if (copy == NULL) {
            *rc = RMR_ENOMEM;
            set_err(err, errlen, "out of memory");
            return NULL;
        }
        bigint_rewrite(json, len, copy);
        root = json_loadb(copy, len + 2 * nbig, JSON_DECODE_ANY, &jerr);
        free(copy);
    }
    if (root == NULL) {
        set_err(err, errlen, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                jerr.column);
        /* jansson quotes the offending token: bytes of the body, kept to printable ASCII so
         * the reason stays one clean log line. */
        for (char *p = err; p != NULL && errlen > 0 && *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        return NULL;
    }
    if (!json_is_object(root)) {
        set_err(err, errlen, "not a JSON object");
        json_decref(root);
        return NULL;
    }
    *rc = 0;
    return root;
}

/* ---- values ------------------------------------------------------------------------------- */

/* A non-negative integer: exact for JSON integers; reals (a value rewritten above, or "1e9")
 * truncated and clamped to UINT64_MAX. Returns 1, or 0 when absent, negative or not a number. */
static int get_u64(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return 0;
        *out = (uint64_t)i;
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0))
            return 0;
        *out = d >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)d;
        return 1;
    }
    return 0;
}

/* A cgroup value: as get_u64, but values at or above the "no value" mark count as absent. */
static int get_cg(const json_t *v, uint64_t *out)
{
    uint64_t x;
    if (!get_u64(v, &x) || x >= CGROUP_NO_VALUE)
        return 0;
    *out = x;
    return 1;
}

static uint64_t u64_or0(const json_t *v)
{
    uint64_t x = 0;
    return get_u64(v, &x) ? x : 0;
}

/* MiB counts (Limits.Memory, ephemeral storage): non-negative and small enough that
 * * 1048576 stays in int64; else 0. */
static int64_t mib_or0(const json_t *v)
{
    uint64_t x = 0;
    if (!get_u64(v, &x) || x > (uint64_t)INT64_MAX / 1048576)
        return 0;
    return (int64_t)x;
}

/* A finite non-negative number of any JSON kind; else 0. */
static double dbl_or0(const json_t *v)
{
    if (!json_is_number(v))
        return 0;
    double d = json_number_value(v);
    return d >= 0 && d <= 1e300 ? d : 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* The copy of a JSON string member: "" when absent or not a string, or NULL when opt is set
 * (the header's "NULL when absent" fields). *nomem is set when a copy failed. */
static char *get_str(const json_t *obj, const char *key, int opt, int *nomem)
{
    const json_t *v = json_object_get(obj, key);
    char *p;
    if (json_is_string(v))
        p = dup_n(json_string_value(v), json_string_length(v));
    else if (opt)
        return NULL;
    else
        p = dup_n("", 0);
    if (p == NULL)
        *nomem = 1;
    return p;
}

/* ---- time --------------------------------------------------------------------------------- */

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

int ecs_time_parse(const char *s, size_t n, int64_t *ns)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    *ns = 0;
    if (s == NULL || n < 20)
        return 0;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
        return 0;
    size_t i = 19;
    int64_t frac = 0;
    if (s[i] == '.') {
        size_t f0 = ++i;
        while (i < n && is_digit(s[i])) {
            if (i - f0 < 9)
                frac = frac * 10 + (s[i] - '0');
            i++;
        }
        if (i == f0)
            return 0;
        for (size_t k = i - f0; k < 9; k++)
            frac *= 10;
    }
    if (i >= n)
        return 0;
    int sign = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '-' ? -1 : 1;
        if (n - i < 6 || !digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
            !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return 0;
        i += 6;
    } else {
        return 0;
    }
    if (i != n)
        return 0;
    /* Docker's zero time "0001-01-01T00:00:00Z" and anything else int64 ns cannot hold
     * (before 1678 or after 2262) give 0. */
    int64_t secs =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60);
    if (secs <= INT64_MIN / 1000000000 || secs >= INT64_MAX / 1000000000)
        return 0;
    *ns = secs * 1000000000 + frac;
    return 1;
}

static int64_t time_or0(const json_t *v)
{
    int64_t ns = 0;
    if (json_is_string(v))
        ecs_time_parse(json_string_value(v), json_string_length(v), &ns);
    return ns;
}

/* ---- /task -------------------------------------------------------------------------------- */

static const char *after_last(const char *s, const char *sep)
{
    const char *r = s;
    size_t n = strlen(sep);
    for (const char *p = strstr(s, sep); p != NULL; p = strstr(p + 1, sep))
        r = p + n;
    return r;
}

/* The region of "arn:aws:ecs:<region>:<account>:task/..." (the fourth ':' field), else of an
 * availability zone: the AZ up to its first "-<digits>" group ("us-west-2d" and
 * "us-west-2-lax-1a" are in "us-west-2"). NULL when neither gives one. */
static char *region_of(const char *arn, const char *az, int *nomem)
{
    const char *start = NULL;
    size_t n = 0;
    if (arn != NULL && strncmp(arn, "arn:", 4) == 0) {
        const char *p = arn;
        for (int field = 0; field < 3 && p != NULL; field++) {
            p = strchr(p, ':');
            if (p != NULL)
                p++;
        }
        const char *end = p != NULL ? strchr(p, ':') : NULL;
        if (end != NULL && end > p) {
            start = p;
            n = (size_t)(end - p);
        }
    }
    if (start == NULL && az != NULL) {
        for (const char *q = strchr(az, '-'); q != NULL; q = strchr(q + 1, '-')) {
            const char *e = q + 1;
            while (is_digit(*e))
                e++;
            if (e > q + 1 && q > az) {
                start = az;
                n = (size_t)(e - az);
                break;
            }
        }
    }
    if (start == NULL)
        return NULL;
    char *r = dup_n(start, n);
    if (r == NULL)
        *nomem = 1;
    return r;
}

/* Revision is a string on the wire; a number is tolerated and printed as an integer. */
static char *revision_of(const json_t *v, int *nomem)
{
    char buf[32];
    char *r;
    if (json_is_string(v)) {
        r = dup_n(json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        r = dup_n(buf, strlen(buf));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= -9e15 && d <= 9e15 && d == (double)(long long)d)
            snprintf(buf, sizeof buf, "%lld", (long long)d);
        else
            snprintf(buf, sizeof buf, "%.17g", d);
        r = dup_n(buf, strlen(buf));
    } else {
        r = dup_n("", 0);
    }
    if (r == NULL)
        *nomem = 1;
    return r;
}

static void container_release(struct ecs_container *c)
{
    free(c->docker_id);
    free(c->name);
    free(c->docker_name);
    free(c->image);
    free(c->image_id);
    free(c->type);
    free(c->known_status);
    free(c->desired_status);
    for (uint32_t i = 0; i < c->nlabels; i++) {
        free(c->labels[i].key);
        free(c->labels[i].value);
    }
    free(c->labels);
    memset(c, 0, sizeof *c);
}

/* Fills c from one element of "Containers". Returns 0 or RMR_ENOMEM (c released then). */
static int container_parse(const json_t *o, struct ecs_container *c)
{
    int nomem = 0;
    memset(c, 0, sizeof *c);
    c->docker_id = get_str(o, "DockerId", 0, &nomem);
    c->name = get_str(o, "Name", 0, &nomem);
    c->docker_name = get_str(o, "DockerName", 0, &nomem);
    c->image = get_str(o, "Image", 0, &nomem);
    c->image_id = get_str(o, "ImageID", 0, &nomem);
    c->type = get_str(o, "Type", 1, &nomem);
    c->known_status = get_str(o, "KnownStatus", 0, &nomem);
    c->desired_status = get_str(o, "DesiredStatus", 0, &nomem);
    c->created_ns = time_or0(json_object_get(o, "CreatedAt"));
    c->started_ns = time_or0(json_object_get(o, "StartedAt"));
    const json_t *lim = json_object_get(o, "Limits");
    c->cpu_units = dbl_or0(json_object_get(lim, "CPU"));
    c->mem_mib = mib_or0(json_object_get(lim, "Memory"));

    const json_t *labels = json_object_get(o, "Labels");
    size_t nl = json_is_object(labels) ? json_object_size(labels) : 0;
    if (nl > ECS_MAX_LABELS)
        nl = ECS_MAX_LABELS;
    if (nl > 0 && !nomem) {
        c->labels = calloc(nl, sizeof *c->labels);
        if (c->labels == NULL)
            nomem = 1;
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)labels, key, v)
        {
            if (nomem || c->nlabels == nl)
                break;
            if (!json_is_string(v))
                continue; /* a label is a string; anything else is skipped */
            struct ecs_label *l = &c->labels[c->nlabels];
            l->key = dup_n(key, strlen(key));
            l->value = dup_n(json_string_value(v), json_string_length(v));
            c->nlabels++;
            if (l->key == NULL || l->value == NULL)
                nomem = 1;
        }
    }
    c->normal = (c->type == NULL || strcmp(c->type, "NORMAL") == 0) &&
                (c->name == NULL || strcmp(c->name, "~internal~ecs~pause") != 0);
    if (nomem) {
        container_release(c);
        return RMR_ENOMEM;
    }
    return 0;
}

void ecs_task_free(struct ecs_task *t)
{
    if (t == NULL)
        return;
    free(t->cluster);
    free(t->cluster_name);
    free(t->task_arn);
    free(t->task_id);
    free(t->family);
    free(t->revision);
    free(t->known_status);
    free(t->desired_status);
    free(t->availability_zone);
    free(t->region);
    free(t->launch_type);
    for (uint32_t i = 0; i < t->ncontainers; i++)
        container_release(&t->containers[i]);
    free(t->containers);
    memset(t, 0, sizeof *t);
}

int ecs_task_parse(const char *json, size_t len, struct ecs_task *out, char *err, size_t errlen)
{
    int rc, nomem = 0;
    memset(out, 0, sizeof *out);
    json_t *root = load_object(json, len, err, errlen, &rc);
    if (root == NULL)
        return rc;
    /* Missing anchors are told, not refused: a plugin still has the other fields to report
     * (Datadog's check calls a /task without Cluster or Containers a WARNING). */
    const json_t *containers = json_object_get(root, "Containers");
    if (!json_is_array(containers))
        out->missing |= ECS_TASK_MISSING_CONTAINERS;
    out->cluster = get_str(root, "Cluster", 0, &nomem);
    out->task_arn = get_str(root, "TaskARN", 0, &nomem);
    out->family = get_str(root, "Family", 0, &nomem);
    out->revision = revision_of(json_object_get(root, "Revision"), &nomem);
    out->known_status = get_str(root, "KnownStatus", 0, &nomem);
    out->desired_status = get_str(root, "DesiredStatus", 0, &nomem);
    out->availability_zone = get_str(root, "AvailabilityZone", 1, &nomem);
    out->launch_type = get_str(root, "LaunchType", 1, &nomem);
    if (nomem)
        goto nomem;
    if (out->task_arn[0] == '\0')
        out->missing |= ECS_TASK_MISSING_ARN;
    if (out->cluster[0] == '\0')
        out->missing |= ECS_TASK_MISSING_CLUSTER;
    const char *cn = after_last(out->cluster, "cluster/");
    out->cluster_name = dup_n(cn, strlen(cn));
    const char *id = strrchr(out->task_arn, '/');
    id = id != NULL ? id + 1 : out->task_arn;
    out->task_id = dup_n(id, strlen(id));
    out->region = region_of(out->task_arn, out->availability_zone, &nomem);
    if (nomem || out->cluster_name == NULL || out->task_id == NULL)
        goto nomem;

    const json_t *lim = json_object_get(root, "Limits");
    out->cpu_vcpus = dbl_or0(json_object_get(lim, "CPU"));
    out->mem_mib = mib_or0(json_object_get(lim, "Memory"));
    const json_t *eph = json_object_get(root, "EphemeralStorageMetrics");
    if (json_is_object(eph)) {
        out->has_ephemeral = 1;
        out->ephemeral_utilized_mib = mib_or0(json_object_get(eph, "Utilized"));
        out->ephemeral_reserved_mib = mib_or0(json_object_get(eph, "Reserved"));
    }

    size_t n = json_array_size(containers);
    if (n > ECS_MAX_CONTAINERS)
        n = ECS_MAX_CONTAINERS;
    if (n > 0 && (out->containers = calloc(n, sizeof *out->containers)) == NULL)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(containers, i);
        if (!json_is_object(c))
            continue; /* malformed: skipped, the others still count */
        if (container_parse(c, &out->containers[out->ncontainers]) != 0)
            goto nomem;
        out->ncontainers++;
    }
    json_decref(root);
    return 0;

nomem:
    set_err(err, errlen, "out of memory");
    ecs_task_free(out);
    json_decref(root);
    return RMR_ENOMEM;
}

void ecs_task_missing_text(uint32_t missing, char *buf, size_t len)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {ECS_TASK_MISSING_ARN, "TaskARN"},
        {ECS_TASK_MISSING_CLUSTER, "Cluster"},
        {ECS_TASK_MISSING_CONTAINERS, "Containers"},
    };
    size_t used = 0;
    if (buf == NULL || len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(missing & names[i].bit))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used > 0 ? ", " : "", names[i].name);
        if (n < 0 || (size_t)n >= len - used) {
            buf[used] = '\0'; /* a name that does not fit is left out whole */
            return;
        }
        used += (size_t)n;
    }
}

const struct ecs_container *ecs_task_container(const struct ecs_task *t, const char *docker_id)
{
    if (t == NULL || docker_id == NULL || docker_id[0] == '\0')
        return NULL;
    for (uint32_t i = 0; i < t->ncontainers; i++)
        if (strcmp(t->containers[i].docker_id, docker_id) == 0)
            return &t->containers[i];
    return NULL;
}

const char *ecs_container_label(const struct ecs_container *c, const char *key)
{
    if (c == NULL || key == NULL)
        return NULL;
    for (uint32_t i = 0; i < c->nlabels; i++)
        if (strcmp(c->labels[i].key, key) == 0)
            return c->labels[i].value;
    return NULL;
}

/* ---- /task/stats -------------------------------------------------------------------------- */

const char *ecs_mem_key_name(enum ecs_mem_key k)
{
    switch (k) {
    case ECS_MEM_CACHE: return "cache";
    case ECS_MEM_RSS: return "rss";
    case ECS_MEM_MAPPED_FILE: return "mapped_file";
    case ECS_MEM_ACTIVE_ANON: return "active_anon";
    case ECS_MEM_ACTIVE_FILE: return "active_file";
    case ECS_MEM_INACTIVE_FILE: return "inactive_file";
    case ECS_MEM_TOTAL_INACTIVE_FILE: return "total_inactive_file";
    case ECS_MEM_TOTAL_RSS: return "total_rss";
    case ECS_MEM_HIER_LIMIT: return "hierarchical_memory_limit";
    case ECS_MEM_HIER_MEMSW_LIMIT: return "hierarchical_memsw_limit";
    case ECS_MEM_PGPGIN: return "pgpgin";
    case ECS_MEM_PGPGOUT: return "pgpgout";
    case ECS_MEM_PGFAULT: return "pgfault";
    case ECS_MEM_PGMAJFAULT: return "pgmajfault";
    case ECS_MEM_ANON: return "anon";
    case ECS_MEM_FILE: return "file";
    case ECS_MEM_NKEYS: return NULL;
    }
    return NULL;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Sums the Read and Write entries of one blkio array ([] or null or the Windows string "None"
 * hold none; op names compared case-insensitively). Returns the number of entries. */
static size_t blkio_sum(const json_t *arr, uint64_t *rd, uint64_t *wr)
{
    if (!json_is_array(arr))
        return 0;
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        const json_t *op = json_object_get(e, "op");
        uint64_t v;
        if (!json_is_string(op) || !get_u64(json_object_get(e, "value"), &v))
            continue;
        if (strcasecmp(json_string_value(op), "read") == 0)
            *rd = sat_add(*rd, v);
        else if (strcasecmp(json_string_value(op), "write") == 0)
            *wr = sat_add(*wr, v);
    }
    return json_array_size(arr);
}

static void cpu_parse(const json_t *o, struct ecs_stats *s)
{
    const json_t *cpu = json_object_get(o, "cpu_stats");
    const json_t *usage = json_object_get(cpu, "cpu_usage");
    s->has_cpu = get_u64(json_object_get(usage, "total_usage"), &s->cpu_total);
    int modes = get_u64(json_object_get(usage, "usage_in_usermode"), &s->cpu_user);
    modes &= get_u64(json_object_get(usage, "usage_in_kernelmode"), &s->cpu_kernel);
    s->system_cpu = u64_or0(json_object_get(cpu, "system_cpu_usage"));
    uint64_t online = u64_or0(json_object_get(cpu, "online_cpus"));
    if (online == 0) {
        /* Metricbeat's fallback: the non-zero entries of percpu_usage (cgroup v1 only). */
        const json_t *per = json_object_get(usage, "percpu_usage");
        size_t i;
        const json_t *e;
        json_array_foreach(per, i, e)
        {
            uint64_t v;
            if (get_u64(e, &v) && v > 0)
                online++;
        }
    }
    s->online_cpus = online > UINT32_MAX ? UINT32_MAX : (uint32_t)online;
    const json_t *thr = json_object_get(cpu, "throttling_data");
    s->throttled_periods = u64_or0(json_object_get(thr, "throttled_periods"));
    s->throttled_time_ns = u64_or0(json_object_get(thr, "throttled_time"));

    const json_t *pre = json_object_get(o, "precpu_stats");
    const json_t *pre_usage = json_object_get(pre, "cpu_usage");
    s->pre_cpu_total = u64_or0(json_object_get(pre_usage, "total_usage"));
    modes &= get_u64(json_object_get(pre_usage, "usage_in_usermode"), &s->pre_cpu_user);
    modes &= get_u64(json_object_get(pre_usage, "usage_in_kernelmode"), &s->pre_cpu_kernel);
    s->pre_system_cpu = u64_or0(json_object_get(pre, "system_cpu_usage"));
    s->has_cpu_modes = modes != 0;
}

static void mem_parse(const json_t *o, struct ecs_stats *s)
{
    const json_t *mem = json_object_get(o, "memory_stats");
    s->has_mem = get_cg(json_object_get(mem, "usage"), &s->mem_usage);
    s->has_max_usage = get_cg(json_object_get(mem, "max_usage"), &s->mem_max_usage);
    s->has_failcnt = get_cg(json_object_get(mem, "failcnt"), &s->mem_failcnt);
    uint64_t limit = 0;
    if (get_u64(json_object_get(mem, "limit"), &limit) && limit < UNSET_MEMORY_LIMIT)
        s->mem_limit = limit;
    const json_t *st = json_object_get(mem, "stats");
    for (int k = 0; k < ECS_MEM_NKEYS; k++)
        if (get_cg(json_object_get(st, ecs_mem_key_name((enum ecs_mem_key)k)), &s->mem[k]))
            s->mem_has |= 1u << k;
}

static int net_parse(const json_t *o, struct ecs_stats *s)
{
    const json_t *nets = json_object_get(o, "networks");
    size_t n = json_is_object(nets) ? json_object_size(nets) : 0;
    if (n > ECS_MAX_IFACES)
        n = ECS_MAX_IFACES;
    if (n > 0 && (s->ifaces = calloc(n, sizeof *s->ifaces)) == NULL)
        return RMR_ENOMEM;
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)nets, name, v)
    {
        if (s->nifaces == n)
            break;
        if (!json_is_object(v) || strcmp(name, "lo") == 0)
            continue;
        struct ecs_iface *f = &s->ifaces[s->nifaces++];
        snprintf(f->name, sizeof f->name, "%s", name);
        f->rx_bytes = u64_or0(json_object_get(v, "rx_bytes"));
        f->rx_packets = u64_or0(json_object_get(v, "rx_packets"));
        f->rx_errors = u64_or0(json_object_get(v, "rx_errors"));
        f->rx_dropped = u64_or0(json_object_get(v, "rx_dropped"));
        f->tx_bytes = u64_or0(json_object_get(v, "tx_bytes"));
        f->tx_packets = u64_or0(json_object_get(v, "tx_packets"));
        f->tx_errors = u64_or0(json_object_get(v, "tx_errors"));
        f->tx_dropped = u64_or0(json_object_get(v, "tx_dropped"));
    }
    if (s->nifaces == 0) {
        free(s->ifaces);
        s->ifaces = NULL;
    }
    const json_t *rate = json_object_get(o, "network_rate_stats");
    if (json_is_object(rate)) {
        s->has_net_rate = 1;
        s->rx_bytes_per_sec = dbl_or0(json_object_get(rate, "rx_bytes_per_sec"));
        s->tx_bytes_per_sec = dbl_or0(json_object_get(rate, "tx_bytes_per_sec"));
    }
    return 0;
}

/* Fills s (docker_id already set) from one entry's object. Returns 0 or RMR_ENOMEM. */
static int stats_entry_parse(const json_t *o, struct ecs_stats *s)
{
    s->present = 1;
    s->read_ns = time_or0(json_object_get(o, "read"));
    s->preread_ns = time_or0(json_object_get(o, "preread"));
    cpu_parse(o, s);
    mem_parse(o, s);
    const json_t *blk = json_object_get(o, "blkio_stats");
    size_t nio = blkio_sum(json_object_get(blk, "io_service_bytes_recursive"), &s->io_read_bytes,
                           &s->io_write_bytes);
    nio +=
        blkio_sum(json_object_get(blk, "io_serviced_recursive"), &s->io_read_ops, &s->io_write_ops);
    s->has_io = nio > 0;
    s->num_procs = u64_or0(json_object_get(o, "num_procs"));
    return net_parse(o, s);
}

void ecs_stats_set_free(struct ecs_stats_set *set)
{
    if (set == NULL)
        return;
    for (uint32_t i = 0; i < set->n; i++) {
        free(set->v[i].docker_id);
        free(set->v[i].ifaces);
    }
    free(set->v);
    memset(set, 0, sizeof *set);
}

int ecs_stats_parse(const char *json, size_t len, struct ecs_stats_set *out, uint32_t *nbad,
                    char *err, size_t errlen)
{
    int rc;
    uint32_t bad = 0;
    memset(out, 0, sizeof *out);
    if (nbad != NULL)
        *nbad = 0;
    json_t *root = load_object(json, len, err, errlen, &rc);
    if (root == NULL)
        return rc;
    size_t n = json_object_size(root);
    if (n > ECS_MAX_CONTAINERS) {
        bad += (uint32_t)(n - ECS_MAX_CONTAINERS); /* beyond the bound: counted, not kept */
        n = ECS_MAX_CONTAINERS;
    }
    if (n > 0 && (out->v = calloc(n, sizeof *out->v)) == NULL)
        goto nomem;
    const char *key;
    const json_t *v;
    json_object_foreach(root, key, v)
    {
        if (out->n == n)
            break;
        struct ecs_stats *s = &out->v[out->n++];
        if ((s->docker_id = dup_n(key, strlen(key))) == NULL)
            goto nomem;
        if (json_is_null(v))
            continue; /* the container is not ready yet */
        if (!json_is_object(v)) {
            bad++;
            continue;
        }
        if (stats_entry_parse(v, s) != 0)
            goto nomem;
    }
    json_decref(root);
    if (nbad != NULL)
        *nbad = bad;
    return 0;

nomem:
    set_err(err, errlen, "out of memory");
    ecs_stats_set_free(out);
    json_decref(root);
    return RMR_ENOMEM;
}

const struct ecs_stats *ecs_stats_find(const struct ecs_stats_set *set, const char *docker_id)
{
    if (set == NULL || docker_id == NULL)
        return NULL;
    for (uint32_t i = 0; i < set->n; i++)
        if (strcmp(set->v[i].docker_id, docker_id) == 0)
            return &set->v[i];
    return NULL;
}
