/* plugins/inputs/dogstatsd: the DogStatsD message parser.
 *
 * Pure and allocation-free: dsd_parse() reads one message (one line of a packet, without its
 * "\n" or "\r\n") and fills a struct dsd_msg whose spans point into the message, so the
 * caller's buffer must outlive the result. It follows the Datadog Agent's parser
 * (comp/dogstatsd/server/impl/parse*.go; PROTOCOLS.md 4.2): the same fields, the same
 * optional-field rules (any order, the last of a repeated field wins, unknown prefixes
 * ignored), the same refusals, and Go's strconv.ParseFloat grammar for values. Where a
 * refusal has a reason it is one of enum dsd_error (agg.h), so the caller counts it.
 *
 * Thread: any; no state.
 */
#ifndef REMORA_DOGSTATSD_PARSE_H
#define REMORA_DOGSTATSD_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"

/* Bounds. A longer message, or a metric name longer than DSD_MAX_NAME, is refused with
 * DSD_E_TOO_LONG (the Agent has no bound of its own; its messages are bounded by its 8 KiB
 * buffer, a datagram by 64 KiB). */
#define DSD_MAX_MESSAGE 65535
#define DSD_MAX_NAME    1024
/* A value longer than this is refused as bad (Go would read any length of digits). */
#define DSD_MAX_NUMBER 1023

/* A piece of the message: pointer and length. An absent field is {NULL, 0}. */
struct dsd_span {
    const char *ptr;
    uint32_t len;
};

enum dsd_msg_kind {
    DSD_MSG_METRIC = 1,
    DSD_MSG_EVENT = 2,
    DSD_MSG_CHECK = 3,
};

/* Origin-detection fields, common to the three kinds. */
struct dsd_origin {
    /* The container id of "|c:" in any of its forms: "ci-<id>", "cid-<id>" (legacy APM), a raw
     * id (legacy DogStatsD), or the "ci-" item of a list ("ci-<id>,in-<inode>"). Empty when
     * there is no "|c:" or it names only a cgroup inode ("in-"), which a sidecar cannot
     * resolve. */
    struct dsd_span container_id;
    struct dsd_span external;    /* "|e:" as sent ("it-false,cn-web,pu-..."); not used yet */
    struct dsd_span cardinality; /* "|card:" as sent; empty when absent */
};

/* A metric message: "<name>:<value>[:<value>...]|<type>[|@rate][|#tags][|T<ts>][|c:..]..." */
struct dsd_metric {
    struct dsd_span name;
    /* The values as sent ("1:2::3"; empty items are skipped), or a set's member (the whole
     * remainder, ':' included). dsd_values_next() walks them. */
    struct dsd_span values;
    double value;         /* the first value (0 for a set) */
    uint32_t nvalues;     /* values in the list, >= 1 (1 for a set) */
    uint32_t type;        /* enum dsd_mtype */
    double rate;          /* "|@": finite and > 0; 1 when absent */
    int64_t timestamp;    /* "|T", unix seconds >= 1; 0 when absent */
    int has_tags;         /* a "|#" field was present (it may hold no tag) */
    struct dsd_span tags; /* after "#" (the last "#" field); walk with dsd_tags_next() */
    struct dsd_origin origin;
};

/* An event: "_e{<title len>,<text len>}:<title>|<text>[|d:][|h:][|k:][|p:][|s:][|t:][|#]..." */
struct dsd_event {
    /* As sent: a two-byte "\n" still stands for a newline; dsd_unescape() turns it into one. */
    struct dsd_span title;
    struct dsd_span text;
    int64_t timestamp;               /* "d:" unix seconds; 0 when absent */
    struct dsd_span host;            /* "h:" */
    struct dsd_span aggregation_key; /* "k:" */
    struct dsd_span source_type;     /* "s:" */
    uint32_t priority;               /* enum rmr_event_priority; normal by default */
    struct dsd_span alert_type;      /* "info" (default), "warning", "error" or "success" */
    int has_tags;
    struct dsd_span tags;
    struct dsd_origin origin;
    /* Optional fields that were present but invalid ("p:urgent", "d:abc"): ignored, as the
     * Agent ignores them (it logs a warning); counted here for the caller's debug log. */
    uint32_t bad_fields;
};

/* A service check: "_sc|<name>|<status>[|d:][|h:][|#tags][|m:<message>][|c:..]..." */
struct dsd_check {
    struct dsd_span name;
    uint32_t status;         /* enum rmr_check_status: 0..3 */
    int64_t timestamp;       /* "d:"; 0 when absent */
    struct dsd_span host;    /* "h:" */
    struct dsd_span message; /* "m:" as sent: "\n" and "m\:" still escaped; see dsd_unescape() */
    int has_tags;
    struct dsd_span tags;
    struct dsd_origin origin;
    uint32_t bad_fields; /* as for events */
};

struct dsd_msg {
    uint32_t kind; /* enum dsd_msg_kind */
    union {
        struct dsd_metric metric;
        struct dsd_event event;
        struct dsd_check check;
    } u;
};

/* Parses one message of len bytes (no line ending; any bytes, NUL included). Returns
 * DSD_E_NONE and fills *out (spans borrowed from msg), or the reason it was refused (*out is
 * then unspecified). */
enum dsd_error dsd_parse(const char *msg, size_t len, struct dsd_msg *out);

/* Parses a number as Go's strconv.ParseFloat(s, 64) does, which the Agent uses for values and
 * sample rates: an optional sign, decimal digits with an optional '.' and exponent, '_'
 * between digits, hexadecimal mantissas with a 'p' exponent, "inf"/"infinity" (signed) and
 * "nan" in any case. A finite number beyond the double range is refused, as Go reports it as
 * an error; underflow gives 0 or a subnormal. Plain integers and decimals of up to 15
 * significant digits take a fast exact path without strtod. Returns 0 and sets *out, or
 * RMR_EINVAL. */
int dsd_parse_double(const char *s, size_t len, double *out);

/* Parses a decimal integer as Go's strconv.ParseInt(s, 10, 64): an optional sign and digits,
 * nothing else, within int64. Returns 0 and sets *out, or RMR_EINVAL / RMR_ERANGE. */
int dsd_parse_int64(const char *s, size_t len, int64_t *out);

/* Walks a metric's value list: sets *out to the next value and returns 1, or returns 0 at the
 * end. *rest starts as the metric's values span and is advanced. Only for lists dsd_parse()
 * accepted (a bad item ends the walk). */
int dsd_values_next(struct dsd_span *rest, double *out);

/* Walks a tag list split on ',': sets *tag to the next tag (possibly empty) and returns 1, or
 * returns 0 at the end. *rest starts as the message's tags span and is advanced. */
int dsd_tags_next(struct dsd_span *rest, struct dsd_span *tag);

/* Copies src to dst turning each two-byte "\n" into a newline, and with check_message also
 * each "m\:" into "m:" (the service-check message escapes of the DogStatsD clients). dst must
 * hold src.len bytes; the result is never longer. Returns the length written. */
size_t dsd_unescape(struct dsd_span src, char *dst, int check_message);

#endif
