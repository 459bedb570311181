/* plugins/lib/numfmt: the one way plugins print a double for a backend (JSON, line protocol).
 * Header-only (static inline), so libraries that use it (lineproto, ndjson) and the plugins
 * that list them never link two copies. */
#ifndef REMORA_PLUGINS_NUMFMT_H
#define REMORA_PLUGINS_NUMFMT_H

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* The longest text numfmt_double() writes, with its NUL ("-2.2250738585072014e-308"). */
#define NUMFMT_DOUBLE_MAX 32

/* Writes finite d into out (cap >= NUMFMT_DOUBLE_MAX) in the fewest significant digits, 15 to
 * 17, that read back as the same double: 0.1 stays "0.1", not "0.10000000000000001" (%.15g
 * drops trailing zeros, so a value with a shorter exact form prints in it). Whole numbers
 * below 1e15 print as integers without the digit loop, as %.15g would print them. Returns the
 * length. */
static inline size_t numfmt_double(char *out, size_t cap, double d)
{
    int n = 0;
    if (d == trunc(d) && fabs(d) < 1e15 && !(d == 0 && signbit(d))) {
        n = snprintf(out, cap, "%" PRId64, (int64_t)d);
        return n > 0 ? (size_t)n : 0;
    }
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, cap, "%.*g", prec, d);
        if (prec == 17 || strtod(out, NULL) == d)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}

#endif
