/* multipart.c: multipart/form-data bodies split into named parts that point into the body. */
#include "server/multipart.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* RFC 2046: 1..70 characters. */
#define MP_MAX_BOUNDARY 70

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

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Whitespace between header tokens; CR and LF too, for folded header lines. */
static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 2046 bchars. */
static bool is_bchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("'()+_,-./:=? ", c) != NULL);
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

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    return p;
}

/* The first token of a header value ("multipart/form-data", "form-data"), up to ';' or
 * whitespace; *pp moves past it. */
static void first_token(const char **pp, const char *end, const char **tok, size_t *n)
{
    const char *p = skip_ws(*pp, end);
    *tok = p;
    while (p < end && *p != ';' && !is_ws(*p))
        p++;
    *n = (size_t)(p - *tok);
    *pp = p;
}

struct param {
    const char *name, *val; /* val: between the quotes if quoted, escapes not yet undone */
    size_t namelen, vallen;
    bool quoted;
};

/* In a quoted value a backslash escapes only '"' and '\' (see multipart.h). */
static bool is_escape(const char *p, const char *end)
{
    return p[0] == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\');
}

/* The next "; name=value" of a header value from *pp (moved past it): 1 found, 0 at the end
 * (a trailing ';' included), -1 malformed. */
static int next_param(const char **pp, const char *end, struct param *pr)
{
    const char *p = skip_ws(*pp, end);
    if (p == end)
        return 0;
    if (*p != ';')
        return -1;
    p = skip_ws(p + 1, end);
    if (p == end) {
        *pp = p;
        return 0;
    }
    pr->name = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    pr->namelen = (size_t)(p - pr->name);
    p = skip_ws(p, end);
    if (pr->namelen == 0 || p == end || *p != '=')
        return -1;
    p = skip_ws(p + 1, end);
    pr->quoted = p < end && *p == '"';
    if (pr->quoted) {
        pr->val = ++p;
        while (p < end && *p != '"')
            p += is_escape(p, end) ? 2 : 1;
        if (p == end)
            return -1;
        pr->vallen = (size_t)(p - pr->val);
        p++;
    } else {
        /* Unquoted values are taken up to ';' or whitespace even with characters RFC 2045
         * would want quoted ('=' in old JavaMail boundaries, '/' in filenames). */
        pr->val = p;
        while (p < end && *p != ';' && !is_ws(*p))
            p++;
        pr->vallen = (size_t)(p - pr->val);
    }
    *pp = p;
    return 1;
}

/* Copy a parameter's value into dst (cap bytes, cap >= 1), undoing escapes, cut at a UTF-8
 * character boundary if it does not fit. *full gets the untruncated length. False if the
 * value holds a control character (a folded line inside quotes, a NUL). */
static bool copy_value(char *dst, size_t cap, const struct param *pr, size_t *full)
{
    const char *p = pr->val, *end = pr->val + pr->vallen;
    size_t o = 0, n = 0;
    unsigned char first_dropped = 0;
    while (p < end) {
        if (pr->quoted && is_escape(p, end))
            p++;
        unsigned char c = (unsigned char)*p++;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
        if (n == o && o + 1 < cap)
            dst[o++] = (char)c;
        else if (n == o)
            first_dropped = c;
        n++;
    }
    /* The first byte that did not fit continues a character: drop that character's start. */
    if (n > o && (first_dropped & 0xC0) == 0x80) {
        while (o > 0 && ((unsigned char)dst[o - 1] & 0xC0) == 0x80)
            o--;
        if (o > 0 && (unsigned char)dst[o - 1] >= 0xC0)
            o--;
    }
    dst[o] = '\0';
    *full = n;
    return true;
}

/* The delimiter "--boundary" from the request's Content-Type into delim (2 + 70 + 1 bytes). */
static int get_boundary(const char *ct, char *delim, size_t *dlen, char *err, size_t errlen)
{
    if (!ct)
        return fail(err, errlen, "multipart body has no boundary parameter");
    const char *p = ct, *end = ct + strlen(ct), *tok;
    size_t toklen;
    first_token(&p, end, &tok, &toklen);
    /* Every parameter is parsed, so a malformed one after the boundary is not overlooked. */
    struct param pr, bpr;
    bool found = false;
    int rc;
    while ((rc = next_param(&p, end, &pr)) > 0)
        if (!found && eq_nocase(pr.name, pr.namelen, "boundary"))
            bpr = pr, found = true;
    if (rc < 0)
        return fail(err, errlen, "multipart Content-Type has a malformed parameter");
    if (!found)
        return fail(err, errlen, "multipart body has no boundary parameter");
    size_t n;
    if (!copy_value(delim + 2, MP_MAX_BOUNDARY + 1, &bpr, &n))
        return fail(err, errlen, "multipart boundary contains an invalid character");
    if (n == 0)
        return fail(err, errlen, "multipart boundary is empty");
    if (n > MP_MAX_BOUNDARY)
        return fail(err, errlen, "multipart boundary is longer than %d characters", MP_MAX_BOUNDARY);
    for (size_t i = 0; i < n; i++)
        if (!is_bchar((unsigned char)delim[2 + i]))
            return fail(err, errlen, "multipart boundary contains an invalid character");
    if (delim[2 + n - 1] == ' ')
        return fail(err, errlen, "multipart boundary ends with a space");
    delim[0] = delim[1] = '-';
    *dlen = n + 2;
    return 0;
}

enum delim_kind { DELIM_NONE, DELIM_NEXT, DELIM_LAST };

/* Is there a delimiter line at c? On DELIM_NEXT *after is the start of the next part's
 * headers. A "--boundary" followed by anything but transport padding and a line end, or by
 * "--", is data. */
static enum delim_kind delim_at(const char *c, const char *end, const char *delim, size_t dlen, const char **after)
{
    if ((size_t)(end - c) < dlen || memcmp(c, delim, dlen) != 0)
        return DELIM_NONE;
    const char *q = c + dlen;
    if (end - q >= 2 && q[0] == '-' && q[1] == '-')
        return DELIM_LAST;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    if (q < end && *q == '\n') {
        *after = q + 1;
        return DELIM_NEXT;
    }
    if (end - q >= 2 && q[0] == '\r' && q[1] == '\n') {
        *after = q + 2;
        return DELIM_NEXT;
    }
    return DELIM_NONE;
}

/* Is the body just a delimiter line cut short ("--boundary", "--boundary-", "--boundary \r")? */
static bool truncated_delim(const char *c, const char *end, const char *delim, size_t dlen)
{
    if ((size_t)(end - c) < dlen || memcmp(c, delim, dlen) != 0)
        return false;
    const char *q = c + dlen;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    return q == end || (end - q == 1 && (*q == '-' || *q == '\r'));
}

/* The first delimiter line that starts after a '\n' at or after p: *line is where its
 * "--boundary" starts. Linear: the boundary holds no '\n', so each line start is tried once. */
static enum delim_kind find_delim(const char *p, const char *end, const char *delim, size_t dlen, const char **line,
                                  const char **after)
{
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return DELIM_NONE;
        p = nl + 1;
        enum delim_kind k = delim_at(p, end, delim, dlen, after);
        if (k != DELIM_NONE) {
            *line = p;
            return k;
        }
    }
}

/* Content-Disposition: form-data; name=...; filename=... */
static int parse_disposition(const char *v, const char *end, struct srv_part *part, bool *have_name, int index,
                             char *err, size_t errlen)
{
    const char *tok;
    size_t toklen;
    first_token(&v, end, &tok, &toklen);
    if (!eq_nocase(tok, toklen, "form-data"))
        return fail(err, errlen, "multipart part %d has a Content-Disposition that is not form-data", index);
    struct param pr;
    int rc;
    bool have_filename = false;
    while ((rc = next_param(&v, end, &pr)) > 0) {
        size_t n;
        bool ok = true;
        /* The first of a repeated parameter wins. */
        if (eq_nocase(pr.name, pr.namelen, "name") && !*have_name) {
            ok = copy_value(part->name, sizeof part->name, &pr, &n);
            *have_name = true;
        } else if (eq_nocase(pr.name, pr.namelen, "filename") && !have_filename) {
            ok = copy_value(part->filename, sizeof part->filename, &pr, &n);
            have_filename = true;
        }
        if (!ok)
            return fail(err, errlen, "multipart part %d has a malformed Content-Disposition", index);
    }
    if (rc < 0)
        return fail(err, errlen, "multipart part %d has a malformed Content-Disposition", index);
    return 0;
}

/* The part's Content-Type, trimmed, whitespace runs (folds included) made one space. */
static int copy_content_type(const char *v, const char *end, struct srv_part *part, int index, char *err,
                             size_t errlen)
{
    size_t cap = sizeof part->content_type, o = 0;
    bool gap = false;
    for (v = skip_ws(v, end); v < end; v++) {
        unsigned char c = (unsigned char)*v;
        if (is_ws((char)c)) {
            gap = true;
            continue;
        }
        if (c < 0x20 || c == 0x7f)
            return fail(err, errlen, "multipart part %d has a malformed Content-Type", index);
        if (gap && o + 1 < cap)
            part->content_type[o++] = ' ';
        gap = false;
        if (o + 1 < cap)
            part->content_type[o++] = (char)c;
    }
    part->content_type[o] = '\0';
    return 0;
}

/* The headers of part index from p up to and including the blank line; *data gets where the
 * part's data starts. */
static int parse_headers(const char *p, const char *end, struct srv_part *part, int index, const char **data,
                         char *err, size_t errlen)
{
    bool have_cd = false, have_name = false, have_ct = false;
    for (;;) {
        if (p < end && *p == '\n') {
            p++;
            break;
        }
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
            break;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return fail(err, errlen, "multipart body ends before its closing boundary");
        /* Folded lines (obs-fold) belong to this header; is_ws treats their CRLFs as space. */
        while (nl + 1 < end && (nl[1] == ' ' || nl[1] == '\t')) {
            nl = memchr(nl + 1, '\n', (size_t)(end - nl - 1));
            if (!nl)
                return fail(err, errlen, "multipart body ends before its closing boundary");
        }
        const char *colon = memchr(p, ':', (size_t)(nl - p));
        const char *name_end = colon;
        while (name_end && name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t'))
            name_end--;
        if (!colon || name_end == p)
            return fail(err, errlen, "multipart part %d has a malformed header line", index);
        size_t nlen = (size_t)(name_end - p);
        if (eq_nocase(p, nlen, "content-disposition") && !have_cd) {
            have_cd = true;
            if (parse_disposition(colon + 1, nl, part, &have_name, index, err, errlen) < 0)
                return -1;
        } else if (eq_nocase(p, nlen, "content-type") && !have_ct) {
            have_ct = true;
            if (copy_content_type(colon + 1, nl, part, index, err, errlen) < 0)
                return -1;
        }
        p = nl + 1;
    }
    if (!have_name || part->name[0] == '\0')
        return fail(err, errlen, "multipart part %d has no Content-Disposition name", index);
    *data = p;
    return 0;
}

int srv_multipart_parse(const uint8_t *body, size_t len, const char *content_type, struct srv_part *parts,
                        int maxparts, int *nparts, char *err, size_t errlen)
{
    *nparts = 0;
    if (err && errlen)
        err[0] = '\0';
    char delim[2 + MP_MAX_BOUNDARY + 1];
    size_t dlen = 0;
    if (get_boundary(content_type, delim, &dlen, err, errlen) < 0)
        return -1;

    const char *b = body ? (const char *)body : "", *end = b + (body ? len : 0), *line, *next = NULL;
    /* The first delimiter: at the very start, or after a preamble that ends in a line end. */
    enum delim_kind k = delim_at(b, end, delim, dlen, &next);
    if (k == DELIM_NONE)
        k = find_delim(b, end, delim, dlen, &line, &next);
    if (k == DELIM_NONE && truncated_delim(b, end, delim, dlen))
        return fail(err, errlen, "multipart body ends before its closing boundary");
    if (k == DELIM_NONE)
        return fail(err, errlen, "multipart body does not start with the boundary");

    int n = 0;
    if (maxparts < 0)
        maxparts = 0;
    while (k == DELIM_NEXT) {
        if (n >= maxparts)
            return fail(err, errlen, "more than %d part%s", maxparts, maxparts == 1 ? "" : "s");
        struct srv_part *part = &parts[n];
        memset(part, 0, sizeof *part);
        const char *data = NULL;
        if (parse_headers(next, end, part, n + 1, &data, err, errlen) < 0)
            return -1;
        /* Search from the blank line's '\n': a part with no data may be sent as headers, blank
         * line, delimiter, the blank line's line end doubling as the delimiter's. */
        k = find_delim(data - 1, end, delim, dlen, &line, &next);
        if (k == DELIM_NONE)
            return fail(err, errlen, "multipart body ends before its closing boundary");
        const char *data_end = line - 1; /* the '\n' before the delimiter */
        if (data_end > data && data_end[-1] == '\r')
            data_end--;
        if (data_end < data)
            data_end = data;
        part->data = (const uint8_t *)data;
        part->len = (size_t)(data_end - data);
        n++;
    }
    *nparts = n;
    return 0;
}

bool srv_is_multipart(const char *content_type)
{
    if (!content_type)
        return false;
    const char *p = content_type, *end = p + strlen(p), *tok;
    size_t n;
    first_token(&p, end, &tok, &n);
    return eq_nocase(tok, n, "multipart/form-data");
}
