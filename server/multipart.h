/* multipart/form-data (RFC 7578) over a fully buffered request body: what `curl -F`, browsers'
 * FormData and Python's requests send.
 *
 *   if (srv_is_multipart(ctype)) {
 *       struct srv_part parts[8];
 *       int n;
 *       char err[256];
 *       if (srv_multipart_parse(body, body_len, ctype, parts, 8, &n, err, sizeof err) < 0)
 *           return reply_error(400, err);  // "multipart part 2 has no Content-Disposition name"
 *       for (int i = 0; i < n; i++)
 *           if (strcmp(parts[i].name, "image") == 0)
 *               st = srv_decode_image(parts[i].data, parts[i].len, 0, &img, err, sizeof err);
 *   }
 *   // parts[i].data points into body: keep body alive while the parts are used.
 *
 * What the parser does, and why:
 *   - The boundary comes from the Content-Type's boundary parameter (quoted or not, other
 *     parameters in any order). It must be 1..70 characters of RFC 2046's set (letters,
 *     digits, space and '()+_,-./:=? ), not ending in a space: that keeps the scan linear.
 *   - Delimiter lines are "--boundary" at the start of the body or of a line, followed by
 *     optional spaces/tabs and CRLF, or by "--" (the last one). Bare LF is accepted wherever
 *     CRLF is. A part's data ends before the CRLF (or LF) that precedes its delimiter, so data
 *     may hold any bytes: NUL, CRLFs, "\r\n--" and even "--boundary" not at a line start or
 *     followed by other characters. Preamble (before the first delimiter) and epilogue (after
 *     the last) are ignored.
 *   - Part headers: names case-insensitive, folded (continuation) lines joined. Only
 *     Content-Disposition (must be form-data, must have a non-empty name) and Content-Type are
 *     read; others (Content-Transfer-Encoding included) are ignored.
 *   - name and filename parameters: quoted or not; in a quoted value \" and \\ are escapes
 *     and any other backslash is literal (so "C:\dir\x.png" survives, as in Go's mime
 *     package). Browsers' percent-encoding of '"' (%22) is not undone. filename* (RFC 5987)
 *     is ignored. Values too long for their field are cut, at a UTF-8 character boundary.
 *   - The filename is whatever the client typed and may name a patient: never log it.
 */
#ifndef SALIENT_SERVER_MULTIPART_H
#define SALIENT_SERVER_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct srv_part {
    char name[128];         /* form field name from Content-Disposition; never "" */
    char filename[256];     /* "" if none */
    char content_type[128]; /* the part's Content-Type value, trimmed, inner whitespace runs
                               collapsed to one space (parameters kept); "" if none */
    const uint8_t *data;    /* points into the body, not copied */
    size_t len;             /* bytes at data; may be 0 */
};

/* Split len bytes of body into at most maxparts parts, in body order. content_type is the
 * request's Content-Type header value (NULL is treated as having no boundary); its media type
 * is not checked here (srv_is_multipart is). Returns 0 with *nparts set (0 for a body that is
 * just a closing delimiter). On failure returns -1, *nparts is 0, parts[] holds junk, and err
 * (errlen bytes, always NUL-terminated; may be NULL when errlen is 0) a one-line message for a
 * client that never echoes body bytes, e.g.
 *   "multipart body has no boundary parameter"
 *   "multipart boundary is longer than 70 characters"
 *   "multipart body does not start with the boundary"   (no delimiter line anywhere)
 *   "multipart part 2 has no Content-Disposition name"
 *   "multipart part 1 has a malformed header line"
 *   "multipart body ends before its closing boundary"
 *   "more than 8 parts"
 * Reads nothing outside body[0, len); allocates nothing; thread-safe. */
int srv_multipart_parse(const uint8_t *body, size_t len, const char *content_type, struct srv_part *parts,
                        int maxparts, int *nparts, char *err, size_t errlen);

/* True if the header value's media type is multipart/form-data (ASCII case-insensitive,
 * surrounding whitespace and parameters ignored). False for NULL. */
bool srv_is_multipart(const char *content_type);

#endif
