/* Fuzzes the JSON string quoting every output relies on: the result must be valid JSON
 * string syntax with only valid UTF-8, whatever bytes come in (log lines and tags are
 * outside input). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dbuf b;
    dbuf_init(&b, 0);
    if (dbuf_json_str(&b, (const char *)data, size) != 0)
        abort();
    if (b.len < 2 || b.data[0] != '"' || b.data[b.len - 1] != '"')
        abort();
    for (size_t i = 1; i + 1 < b.len; i++) {
        if (b.data[i] < 0x20)
            abort(); /* control bytes must be escaped */
        if (b.data[i] == '\\') {
            i++; /* the escaped character */
            continue;
        }
        if (b.data[i] == '"')
            abort(); /* an unescaped quote would end the string */
    }
    if (!valid_utf8(b.data, b.len))
        abort();
    dbuf_release(&b);
    return 0;
}
