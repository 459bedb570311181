#include "util/httptext.h"

#include <string.h>

int http_is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch) != NULL)
            return 0;
    }
    return 1;
}

int http_is_field_value(const char *s)
{
    if (s == NULL)
        return 0;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 32 && ch != '\t') || ch == 127)
            return 0;
    }
    return 1;
}
