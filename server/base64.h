/* Base64 (RFC 4648) for request bodies: a client's image as a JSON string, with or without a
 * data: URI prefix, decoded strictly; and the encoder for responses.
 *
 *   uint8_t *bytes;
 *   size_t n;
 *   char mime[128], err[256];
 *   if (srv_base64_decode(s, strlen(s), &bytes, &n, mime, sizeof mime, err, sizeof err) < 0)
 *       return reply_error(400, err);            // "invalid base64 character '%' at offset 17"
 *   st = srv_decode_image(bytes, n, 0, &img, err, sizeof err);   // mime is a hint, never trusted
 *   free(bytes);
 *
 * What the decoder accepts, and why:
 *   - Both alphabets, standard (+/) and URL-safe (-_), even mixed in one string: every
 *     character still has one meaning, and clients differ in what their library emits.
 *   - Whitespace (space, \t, \r, \n) anywhere is skipped: MIME-style lines of 76 characters,
 *     pretty-printed JSON, a trailing newline from a shell.
 *   - Padding is optional; if present it must be right: only at the end (whitespace may
 *     follow), at most two '=', and exactly as many as the last quantum needs.
 *   - The unused low bits of a final 2- or 3-character quantum need not be zero ("Zh==" is
 *     "f", as is "Zg=="), as Python's base64.b64decode and most decoders allow: rejecting
 *     it would refuse strings that decode everywhere else.
 *   - An optional data: URI prefix, "data:[<type>/<subtype>][;param]...;base64," (scheme and
 *     "base64" case-insensitive). Its media type is reported but never trusted: the image
 *     decoder looks at magic bytes. Percent-encoding inside the data is not undone.
 *   - Anything else is an error, reported once at the first offending byte.
 */
#ifndef SALIENT_SERVER_BASE64_H
#define SALIENT_SERVER_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Decode len bytes of base64 text (need not be NUL-terminated; may hold NULs, which are
 * errors). On success returns 0, *out is a new malloc'd buffer the caller frees (never NULL;
 * it may be slightly larger than *outlen) and *outlen its decoded length (at least 1).
 *
 * mime (mimelen bytes; may be NULL, then the data: media type is only validated) receives the
 * lowercased media type of a data: prefix, "" when there is no prefix or the prefix has none
 * ("data:;base64,"). A media type that does not fit in mimelen - 1 bytes is an error, not a
 * silent truncation.
 *
 * On failure returns -1, *out is NULL, *outlen 0, mime "" and err (errlen bytes, always
 * NUL-terminated; may be NULL when errlen is 0) a one-line message for a client, e.g.
 *   "empty base64"                                    (only whitespace, prefix or not)
 *   "invalid base64 character '%' at offset 17"       (offsets count from text[0])
 *   "invalid base64 character '\x00' at offset 3"     (non-printable bytes as \xNN)
 *   "base64 length is not valid (1 character left over)"
 *   "base64 padding '=' at offset 4 is not at the end"
 *   "base64 padding is not valid (1 '=' where 2 are needed)"
 *   "data: URI is not base64-encoded"
 *   "out of memory decoding base64"
 * It never echoes more than the one offending byte. Thread-safe: no globals but a const table.
 * Single pass, table-driven; tens of MiB are fine. */
int srv_base64_decode(const char *text, size_t len, uint8_t **out, size_t *outlen, char *mime, size_t mimelen,
                      char *err, size_t errlen);

/* Encode len bytes (data may be NULL when len is 0) in the standard alphabet with '='
 * padding, no line breaks. Returns a new malloc'd NUL-terminated string the caller frees, its
 * length (without the NUL) in *outlen if outlen is not NULL; NULL if out of memory or if the
 * result's size would overflow size_t. */
char *srv_base64_encode(const uint8_t *data, size_t len, size_t *outlen);

#endif
