/* base64.c: strict base64 decoding (both alphabets, optional data: prefix) and encoding. */
#include "server/base64.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Byte -> class: 1..64 is an alphabet character's value + 1 (both alphabets), 0 is invalid. */
enum { B64_BAD = 0, B64_WS = 65, B64_PAD = 66 };

static const uint8_t b64_class[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0, 65, 65,  0,  0, 65,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    65,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, 63,  0, 63,  0, 64,
    53, 54, 55, 56, 57, 58, 59, 60, 61, 62,  0,  0,  0, 66,  0,  0,
     0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,  0,  0,  0,  0, 64,
     0, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41,
    42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
};

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* n bytes at p equal the lowercase word w, ignoring ASCII case. */
static bool eq_nocase(const char *p, size_t n, const char *w)
{
    if (strlen(w) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)p[i]) != w[i])
            return false;
    return true;
}

/* RFC 7230 tchar: what a media type's type and subtype are made of. */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* "" or token "/" token. */
static bool valid_media_type(const char *p, size_t n)
{
    if (n == 0)
        return true;
    const char *slash = memchr(p, '/', n);
    if (!slash || slash == p || slash == p + n - 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p + i != slash && !is_tchar((unsigned char)p[i]))
            return false;
    return true;
}

/* The header of a data: URI starting at text[*pos] ("data:" already matched). Moves *pos past
 * the comma and fills mime. */
static int parse_data_prefix(const char *text, size_t len, size_t *pos, char *mime, size_t mimelen, char *err,
                             size_t errlen)
{
    const char *hdr = text + *pos + 5;
    const char *comma = memchr(hdr, ',', len - (*pos + 5));
    if (!comma)
        return fail(err, errlen, "data: URI has no ',' before its data");
    size_t hlen = (size_t)(comma - hdr);
    const char *semi = memchr(hdr, ';', hlen);
    size_t tlen = semi ? (size_t)(semi - hdr) : hlen;
    /* Parameters in between (charset=..., name=...) are skipped: only the last must say base64. */
    const char *last = hdr + hlen;
    while (last > hdr && last[-1] != ';')
        last--;
    if (!semi || !eq_nocase(last, (size_t)(hdr + hlen - last), "base64"))
        return fail(err, errlen, "data: URI is not base64-encoded");
    if (!valid_media_type(hdr, tlen))
        return fail(err, errlen, "data: URI has an invalid media type");
    if (mime) {
        if (tlen >= mimelen)
            return fail(err, errlen, "data: URI media type is too long (%zu characters)", tlen);
        for (size_t i = 0; i < tlen; i++)
            mime[i] = (char)ascii_lower((unsigned char)hdr[i]);
        mime[tlen] = '\0';
    }
    *pos = (size_t)(comma + 1 - text);
    return 0;
}

static int bad_char(unsigned char c, size_t at, char *err, size_t errlen)
{
    if (c > 0x20 && c < 0x7f)
        return fail(err, errlen, "invalid base64 character '%c' at offset %zu", c, at);
    return fail(err, errlen, "invalid base64 character '\\x%02x' at offset %zu", c, at);
}

/* The decoding proper from text[pos]; out has room for (len - pos) / 4 * 3 + 3 bytes. */
static int decode_body(const unsigned char *t, size_t pos, size_t len, uint8_t *out, size_t *outlen, char *err,
                       size_t errlen)
{
    uint8_t *o = out;
    uint32_t acc = 0;
    size_t nchars = 0, npad = 0, first_pad = 0;
    int q = 0; /* characters in the current quantum */
    size_t i = pos;
    while (i < len) {
        /* Fast path: whole quanta of four alphabet characters, the bulk of any real input. */
        if (q == 0 && npad == 0) {
            while (i + 4 <= len) {
                unsigned a = b64_class[t[i]] - 1u, b = b64_class[t[i + 1]] - 1u;
                unsigned c = b64_class[t[i + 2]] - 1u, d = b64_class[t[i + 3]] - 1u;
                if ((a | b | c | d) > 63)
                    break;
                uint32_t v = a << 18 | b << 12 | c << 6 | d;
                o[0] = (uint8_t)(v >> 16), o[1] = (uint8_t)(v >> 8), o[2] = (uint8_t)v;
                o += 3, i += 4, nchars += 4;
            }
            if (i >= len)
                break;
        }
        unsigned cls = b64_class[t[i]];
        if (cls >= 1 && cls <= 64) {
            if (npad)
                return fail(err, errlen, "base64 padding '=' at offset %zu is not at the end", first_pad);
            acc = acc << 6 | (cls - 1);
            nchars++;
            if (++q == 4) {
                o[0] = (uint8_t)(acc >> 16), o[1] = (uint8_t)(acc >> 8), o[2] = (uint8_t)acc;
                o += 3, q = 0, acc = 0;
            }
        } else if (cls == B64_PAD) {
            if (npad++ == 0)
                first_pad = i;
        } else if (cls != B64_WS) {
            return bad_char(t[i], i, err, errlen);
        }
        i++;
    }
    if (nchars == 0 && npad == 0)
        return fail(err, errlen, "empty base64");
    if (q == 1)
        return fail(err, errlen, "base64 length is not valid (1 character left over)");
    if (npad > 2)
        return fail(err, errlen, "base64 padding is not valid (%zu '=', at most 2 are allowed)", npad);
    if (npad) {
        size_t need = q == 0 ? 0 : (size_t)(4 - q);
        if (npad != need) {
            if (need == 0)
                return fail(err, errlen, "base64 padding is not valid (%zu '=' where none is needed)", npad);
            return fail(err, errlen, "base64 padding is not valid (%zu '=' where %zu %s needed)", npad, need,
                        need == 1 ? "is" : "are");
        }
    }
    /* The low bits a short quantum leaves unused are dropped, zero or not (see base64.h). */
    if (q == 2) {
        *o++ = (uint8_t)(acc >> 4);
    } else if (q == 3) {
        o[0] = (uint8_t)(acc >> 10), o[1] = (uint8_t)(acc >> 2);
        o += 2;
    }
    *outlen = (size_t)(o - out);
    return 0;
}

int srv_base64_decode(const char *text, size_t len, uint8_t **out, size_t *outlen, char *mime, size_t mimelen,
                      char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    if (mime && mimelen)
        mime[0] = '\0';
    else
        mime = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!text)
        len = 0;

    size_t pos = 0;
    while (pos < len && b64_class[(unsigned char)text[pos]] == B64_WS)
        pos++;
    /* ':' is not base64, so a leading "data:" cannot be the start of valid data. */
    if (len - pos >= 5 && eq_nocase(text + pos, 5, "data:")) {
        if (parse_data_prefix(text, len, &pos, mime, mimelen, err, errlen) < 0) {
            if (mime)
                mime[0] = '\0';
            return -1;
        }
    }

    size_t cap = (len - pos) / 4 * 3 + 3;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        if (mime)
            mime[0] = '\0';
        return fail(err, errlen, "out of memory decoding base64");
    }
    if (decode_body((const unsigned char *)text, pos, len, buf, outlen, err, errlen) < 0) {
        free(buf);
        *outlen = 0;
        if (mime)
            mime[0] = '\0';
        return -1;
    }
    *out = buf;
    return 0;
}

char *srv_base64_encode(const uint8_t *data, size_t len, size_t *outlen)
{
    if (outlen)
        *outlen = 0;
    if (len / 3 >= (SIZE_MAX - 1) / 4 - 1)
        return NULL;
    size_t n = (len + 2) / 3 * 4;
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    char *o = s;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        o[0] = b64_alphabet[v >> 18], o[1] = b64_alphabet[(v >> 12) & 63];
        o[2] = b64_alphabet[(v >> 6) & 63], o[3] = b64_alphabet[v & 63];
        o += 4;
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        o[0] = b64_alphabet[v >> 18], o[1] = b64_alphabet[(v >> 12) & 63], o[2] = '=', o[3] = '=';
        o += 4;
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        o[0] = b64_alphabet[v >> 18], o[1] = b64_alphabet[(v >> 12) & 63], o[2] = b64_alphabet[(v >> 6) & 63];
        o[3] = '=';
        o += 4;
    }
    *o = '\0';
    if (outlen)
        *outlen = n;
    return s;
}
