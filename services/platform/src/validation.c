#include "validation.h"

#include <stdio.h>
#include <string.h>

static int is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
           ch == '\v' || ch == '\f';
}

static int is_alnum(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/*
 * Local-part characters: RFC 5322 atext plus ".", minus nothing — the
 * unquoted dot-atom form. Quoted local parts are not accepted.
 */
static int is_local_char(unsigned char ch)
{
    return is_alnum(ch) || strchr("!#$%&'*+-/=?^_`{|}~.", ch) != NULL;
}

static int reject(char *why, size_t whylen, const char *msg)
{
    snprintf(why, whylen, "%s", msg);
    return -1;
}

static int check_domain(const char *d, size_t n, char *why, size_t whylen)
{
    size_t label = 0, dots = 0;

    if (n == 0)
        return reject(why, whylen, "email must have a domain after '@'");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (ch == '.') {
            if (label == 0 || d[i - 1] == '-')
                return reject(why, whylen, "email domain is malformed");
            label = 0;
            dots++;
            continue;
        }
        if (!is_alnum(ch) && ch != '-')
            return reject(why, whylen,
                        "email domain has an invalid character");
        if (ch == '-' && label == 0)
            return reject(why, whylen, "email domain is malformed");
        if (++label > 63)
            return reject(why, whylen, "email domain label is too long");
    }
    if (label == 0 || d[n - 1] == '-')
        return reject(why, whylen, "email domain is malformed");
    if (dots == 0)
        return reject(why, whylen, "email domain must contain a dot");
    return 0;
}

int plat_email_normalize(const char *in, size_t len, char *out,
                         size_t outlen, char *why, size_t whylen)
{
    size_t b = 0, e = len, n, at = 0, nat = 0;

    if (outlen < PLAT_EMAIL_MAX + 1)
        return reject(why, whylen, "internal: output buffer too small");
    out[0] = '\0';
    while (b < e && is_ws((unsigned char)in[b]))
        b++;
    while (e > b && is_ws((unsigned char)in[e - 1]))
        e--;
    n = e - b;
    if (n == 0)
        return reject(why, whylen, "email is required");
    if (n > PLAT_EMAIL_MAX)
        return reject(why, whylen, "email is longer than 254 characters");

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[b + i];
        if (ch >= 0x80)
            return reject(why, whylen, "email must be ASCII");
        if (ch <= 0x20 || ch == 0x7f)
            return reject(why, whylen,
                        "email must not contain spaces or control "
                        "characters");
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        if (ch == '@') {
            at = i;
            nat++;
        }
        out[i] = (char)ch;
    }
    out[n] = '\0';

    if (nat != 1)
        return reject(why, whylen, "email must look like name@example.com");
    if (at == 0)
        return reject(why, whylen, "email must have a name before '@'");
    if (at > PLAT_EMAIL_LOCAL_MAX)
        return reject(why, whylen, "email name part is too long");
    for (size_t i = 0; i < at; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (!is_local_char(ch))
            return reject(why, whylen, "email has an invalid character");
        if (ch == '.' && (i == 0 || i == at - 1 || out[i - 1] == '.'))
            return reject(why, whylen, "email name part is malformed");
    }
    if (check_domain(out + at + 1, n - at - 1, why, whylen) != 0)
        return -1;
    return 0;
}

long plat_utf8_len(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    long count = 0;
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        size_t need;
        unsigned long cp;

        if (c == 0)
            return -1;
        if (c < 0x80) {
            i++;
            count++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (len - i - 1 < need)
            return -1;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return -1;
        i += need + 1;
        count++;
    }
    return count;
}

int plat_is_uuid(const char *s)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

    if (s == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        char ch = s[i];
        if (shape[i] == '-') {
            if (ch != '-')
                return 0;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                     (ch >= 'A' && ch <= 'F'))) {
            return 0;
        }
    }
    return s[sizeof(shape) - 1] == '\0';
}
