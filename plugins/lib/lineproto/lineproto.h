/* plugins/lib/lineproto: InfluxDB line protocol as Datakit's dataway and InfluxDB 1.x take it,
 * the project's one encoder (and the parser the logstreaming input and the tests use).
 *
 *   <measurement>[,<tag key>=<tag value>...] <field key>=<field value>[,...] [<time ns>]\n
 *
 * Escaping (PROTOCOLS.md 7.5; influxdb1-client models): measurement escapes ',' and ' ';
 * tag keys, tag values and field keys escape ',', '=' and ' '; string field values are quoted
 * with '"' and escape '"' and '\'. Line breaks are not allowed outside string fields: the
 * encoder replaces them with a space (Datakit's rule for tag values). A run of backslashes in a
 * name right before ',', '=', ' ', '"' or at its end is left out (InfluxDB cannot read it; see
 * README.md), and a measurement starting with '#' or a tab starts with '_'. Integers end in 'i';
 * unsigned values are written as 'i' (no 'u': Datakit and InfluxDB 1.x refuse it), values above
 * INT64_MAX are dropped and counted; floats carry full precision (shortest round-trip form);
 * NaN and infinities are dropped and counted; booleans are 'true'/'false'. A tag with an empty
 * value (or an empty key) is left out, as Datakit's point builder does. A point left without
 * any field is not written.
 *
 * Pure: no host calls, no globals. The buffer grows geometrically.
 */
#ifndef REMORA_PLUGINS_LINEPROTO_H
#define REMORA_PLUGINS_LINEPROTO_H

#include <stddef.h>
#include <stdint.h>

#include <remora/record.h>

/* A growable byte buffer. */
struct lp_buf {
    char *data;
    size_t len;
    size_t cap;
};
void lp_buf_init(struct lp_buf *b);
void lp_buf_release(struct lp_buf *b);
void lp_buf_reset(struct lp_buf *b); /* len 0, memory kept */

/* One point to write. Tags are written in the order given (callers pass sorted tag sets, which
 * is what InfluxDB prefers). */
struct lp_point {
    struct rmr_str measurement;
    const struct rmr_tag *tags;
    uint32_t ntags;
    uint32_t nfields;
    const struct rmr_field *fields;
    int64_t time_ns; /* 0: no timestamp written */
};

/* Why parts of a point were left out, summed over calls. */
struct lp_drops {
    uint64_t non_finite;   /* NaN / Inf fields */
    uint64_t uint_range;   /* unsigned fields above INT64_MAX */
    uint64_t empty_tags;   /* tags with an empty key or value */
    uint64_t no_fields;    /* points not written: no field left */
    uint64_t string_field; /* string fields left out with LP_NO_STRING_FIELDS */
    uint64_t empty_keys;   /* fields with an empty key (InfluxDB: "missing field key") */
};

#define LP_NO_STRING_FIELDS 0x1u /* the metric category drops string fields (Datakit) */

/* Appends one line ending in '\n'. Returns 1 when written, 0 when the point had no field left
 * (counted in drops), RMR_EINVAL (empty measurement), RMR_ENOMEM (buffer unchanged). drops may
 * be NULL. */
int lp_encode(struct lp_buf *buf, const struct lp_point *p, uint32_t flags, struct lp_drops *drops);

/* ---- parsing (round trips, tests, the logstreaming input) ------------------------------------ */

enum lp_value_type { LP_FLOAT = 1, LP_INT, LP_UINT, LP_STRING, LP_BOOL };

/* A parsed point. Strings are unescaped into the parser's scratch buffer and valid until the
 * next call with the same scratch; at most LP_MAX_TAGS tags and LP_MAX_FIELDS fields. */
#define LP_MAX_TAGS   256
#define LP_MAX_FIELDS 1024
struct lp_parsed {
    struct rmr_str measurement;
    uint32_t ntags;
    uint32_t nfields;
    struct rmr_tag tags[LP_MAX_TAGS];
    struct {
        struct rmr_str key;
        uint32_t type; /* enum lp_value_type */
        uint32_t reserved_;
        union {
            double f;
            int64_t i;
            uint64_t u;
            int b;
            struct rmr_str s;
        } v;
    } fields[LP_MAX_FIELDS];
    int64_t time_ns; /* 0 when absent */
    int has_time;
};

/* Parses one line (without its '\n'; a trailing '\r' is ignored). scratch holds unescaped
 * strings. Returns 0, or RMR_EINVAL with a reason in err (comment and empty lines are
 * RMR_ENOENT: nothing to parse). */
int lp_parse_line(const char *line, size_t len, struct lp_parsed *out, struct lp_buf *scratch,
                  char *err, size_t errlen);

#endif
