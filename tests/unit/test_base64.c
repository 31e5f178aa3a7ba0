/* test_base64.c: base64 against RFC 4648's vectors and a bit-by-bit reference encoder, plus tables of accepted and rejected strings. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base64.h"
#include "tests/unit/fixture.h"

#define STD_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#define URL_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

/* The reference: walk the input bit by bit, six bits per character (no tables, no quanta),
 * so it shares nothing with the code under test. */
static char *ref_encode(const uint8_t *p, size_t n, const char *alphabet, bool pad)
{
    size_t nbits = n * 8, nchars = (nbits + 5) / 6;
    char *s = malloc(nchars + 4);
    ck_assert_ptr_nonnull(s);
    size_t o = 0;
    for (size_t k = 0; k < nchars; k++) {
        unsigned v = 0;
        for (size_t j = 0; j < 6; j++) {
            size_t bit = k * 6 + j;
            v = v << 1 | (bit < nbits ? (p[bit / 8] >> (7 - bit % 8)) & 1u : 0u);
        }
        s[o++] = alphabet[v];
    }
    while (pad && o % 4)
        s[o++] = '=';
    s[o] = '\0';
    return s;
}

static void random_bytes(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (uint8_t)(x >> 11);
    }
}

/* s with "\r\n" after every 76 characters (MIME), a leading " \t" and a trailing "\n". */
static char *wrap76(const char *s)
{
    size_t n = strlen(s);
    char *w = malloc(n + n / 76 * 2 + 8);
    ck_assert_ptr_nonnull(w);
    size_t o = 0;
    w[o++] = ' ', w[o++] = '\t';
    for (size_t i = 0; i < n; i++) {
        w[o++] = s[i];
        if (i % 76 == 75)
            w[o++] = '\r', w[o++] = '\n';
    }
    w[o++] = '\n';
    w[o] = '\0';
    return w;
}

/* Decode s (strlen), which must succeed and give exactly want[0, n). */
static void expect_decode(const char *what, const char *s, const uint8_t *want, size_t n)
{
    uint8_t *out;
    size_t outlen;
    char mime[64], err[256];
    int rc = srv_base64_decode(s, strlen(s), &out, &outlen, mime, sizeof mime, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: '%.60s' failed: %s", what, s, err);
    ck_assert_msg(outlen == n, "%s: decoded %zu bytes, expected %zu", what, outlen, n);
    ck_assert_msg(memcmp(out, want, n) == 0, "%s: decoded bytes differ", what);
    free(out);
}

/* ---- RFC 4648 section 10 ---- */

static const struct {
    const char *plain, *b64, *unpadded;
} rfc_vectors[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

START_TEST(rfc4648_vectors)
{
    const char *plain = rfc_vectors[_i].plain, *b64 = rfc_vectors[_i].b64;
    size_t n = strlen(plain), enclen = 99;
    char *enc = srv_base64_encode((const uint8_t *)plain, n, &enclen);
    ck_assert_ptr_nonnull(enc);
    ck_assert_str_eq(enc, b64);
    ck_assert_uint_eq(enclen, strlen(b64));
    free(enc);
    if (n == 0)
        return; /* decoding "" is an error: see bad_input */
    expect_decode("padded", b64, (const uint8_t *)plain, n);
    expect_decode("unpadded", rfc_vectors[_i].unpadded, (const uint8_t *)plain, n);
}
END_TEST

/* ---- random bytes of every length 0..300 ---- */

START_TEST(round_trip)
{
    size_t n = (size_t)_i;
    uint8_t *bytes = malloc(n + 1);
    ck_assert_ptr_nonnull(bytes);
    random_bytes(bytes, n, (uint32_t)_i + 1);

    size_t enclen;
    char *enc = srv_base64_encode(bytes, n, &enclen);
    ck_assert_ptr_nonnull(enc);
    char *ref = ref_encode(bytes, n, STD_ALPHABET, true);
    ck_assert_msg(strcmp(enc, ref) == 0, "length %zu: encoder gives %s, reference %s", n, enc, ref);
    ck_assert_uint_eq(enclen, (n + 2) / 3 * 4);
    ck_assert_uint_eq(strlen(enc), enclen);

    char *url = ref_encode(bytes, n, URL_ALPHABET, false);
    char *wrapped = wrap76(enc);
    char *data_uri = malloc(enclen + 32);
    ck_assert_ptr_nonnull(data_uri);
    snprintf(data_uri, enclen + 32, "data:image/png;base64,%s", enc);

    if (n == 0) {
        uint8_t *out = (uint8_t *)1;
        size_t outlen = 1;
        char err[64];
        ck_assert_int_eq(srv_base64_decode(enc, 0, &out, &outlen, NULL, 0, err, sizeof err), -1);
        ck_assert_str_eq(err, "empty base64");
        ck_assert_ptr_null(out);
        ck_assert_uint_eq(outlen, 0);
    } else {
        expect_decode("standard", enc, bytes, n);
        expect_decode("url-safe unpadded", url, bytes, n);
        expect_decode("wrapped at 76", wrapped, bytes, n);
        expect_decode("data: URI", data_uri, bytes, n);
        /* Lengths that are not a multiple of 3 end in padding. */
        if (n % 3)
            ck_assert(strchr(enc, '=') != NULL);
    }
    free(bytes), free(enc), free(ref), free(url), free(wrapped), free(data_uri);
}
END_TEST

/* Big enough that a quadratic or per-byte-call decoder would show; wrapped like MIME. */
START_TEST(large)
{
    size_t n = (size_t)3 << 20;
    uint8_t *bytes = malloc(n);
    ck_assert_ptr_nonnull(bytes);
    random_bytes(bytes, n, 77);
    char *enc = srv_base64_encode(bytes, n, NULL);
    ck_assert_ptr_nonnull(enc);
    char *wrapped = wrap76(enc);
    uint8_t *out;
    size_t outlen;
    char err[256];
    ck_assert_int_eq(srv_base64_decode(wrapped, strlen(wrapped), &out, &outlen, NULL, 0, err, sizeof err), 0);
    ck_assert_uint_eq(outlen, n);
    ck_assert(memcmp(out, bytes, n) == 0);
    free(out), free(wrapped), free(enc), free(bytes);
}
END_TEST

/* ---- strings that decode ---- */

static const struct good_case {
    const char *in;
    const char *want; /* bytes, as a string */
    size_t wantlen;
    const char *mime;
} good_cases[] = {
    {"Zh==", "f", 1, ""},  /* non-zero unused bits: accepted, dropped */
    {"Zh", "f", 1, ""},
    {"Zm9=", "fo", 2, ""}, /* same with two unused bits */
    {"+/+/", "\xfb\xff\xbf", 3, ""},
    {"-_-_", "\xfb\xff\xbf", 3, ""},
    {"+_-/", "\xfb\xff\xbf", 3, ""}, /* alphabets mixed */
    {"AAAA", "\0\0\0", 3, ""},
    {" Zm9v\r\nYmFy\t", "foobar", 6, ""},
    {"Z m 9 v Y m E =", "fooba", 5, ""},
    {"Zg= =", "f", 1, ""},
    {"Zg==\n\n", "f", 1, ""},
    {"\nZ\ng\n=\n=\n", "f", 1, ""},
    {"data:image/png;base64,Zm9v", "foo", 3, "image/png"},
    {"DATA:Image/PNG;BASE64,Zm9v", "foo", 3, "image/png"},
    {"data:;base64,Zm9v", "foo", 3, ""},
    {"data:image/jpeg;name=x.jpg;charset=utf-8;base64,Zm9v", "foo", 3, "image/jpeg"},
    {"  \r\ndata:image/png;base64,\nZm9v\n", "foo", 3, "image/png"},
    {"data:application/octet-stream;base64,Zm8", "fo", 2, "application/octet-stream"},
};

START_TEST(good_input)
{
    const struct good_case *c = &good_cases[_i];
    uint8_t *out;
    size_t outlen;
    char mime[64], err[256];
    memset(mime, 'x', sizeof mime); /* must be overwritten, "" included */
    int rc = srv_base64_decode(c->in, strlen(c->in), &out, &outlen, mime, sizeof mime, err, sizeof err);
    ck_assert_msg(rc == 0, "'%s': %s", c->in, err);
    ck_assert_msg(outlen == c->wantlen && memcmp(out, c->want, outlen) == 0, "'%s': wrong bytes (%zu)", c->in,
                  outlen);
    ck_assert_str_eq(mime, c->mime);
    free(out);
    /* mime may be NULL, data: prefix or not. */
    rc = srv_base64_decode(c->in, strlen(c->in), &out, &outlen, NULL, 0, err, sizeof err);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(outlen, c->wantlen);
    free(out);
}
END_TEST

/* ---- strings that do not ---- */

#define S(lit) lit, sizeof(lit) - 1 /* a literal with its length: some hold NULs */

static const struct bad_case {
    const char *in;
    size_t len;
    const char *msg; /* the whole message */
} bad_cases[] = {
    {S(""), "empty base64"},
    {S(" \r\n\t "), "empty base64"},
    {S("Zg="), "base64 padding is not valid (1 '=' where 2 are needed)"},
    {S("Zg==="), "base64 padding is not valid (3 '=', at most 2 are allowed)"},
    {S("Zm9v===="), "base64 padding is not valid (4 '=', at most 2 are allowed)"},
    {S("Z"), "base64 length is not valid (1 character left over)"},
    {S("Zm9vY"), "base64 length is not valid (1 character left over)"},
    {S("Z=="), "base64 length is not valid (1 character left over)"},
    {S("Zm9v=Zm9v"), "base64 padding '=' at offset 4 is not at the end"},
    {S("Zg==Zg=="), "base64 padding '=' at offset 2 is not at the end"},
    {S("Zg= \n=x"), "base64 padding '=' at offset 2 is not at the end"},
    {S("Zm9v="), "base64 padding is not valid (1 '=' where none is needed)"},
    {S("Zm8=="), "base64 padding is not valid (2 '=' where 1 is needed)"},
    {S("="), "base64 padding is not valid (1 '=' where none is needed)"},
    {S("Zm9vYmFyZm9vYmFy %"), "invalid base64 character '%' at offset 17"},
    {S("Zm9v\0YmFy"), "invalid base64 character '\\x00' at offset 4"},
    {S("Zm9v\xc3\xa9"), "invalid base64 character '\\xc3' at offset 4"},
    {S("Zm9v\x7f"), "invalid base64 character '\\x7f' at offset 4"},
    {S("Zm9v\x0b"), "invalid base64 character '\\x0b' at offset 4"}, /* VT is not our whitespace */
    {S("Zm9v.YmFy"), "invalid base64 character '.' at offset 4"},
    {S("\"Zm9v\""), "invalid base64 character '\"' at offset 0"},
    {S("Zg==%"), "invalid base64 character '%' at offset 4"},
    {S("Zm9v,"), "invalid base64 character ',' at offset 4"},
    {S("dat:Zm9v"), "invalid base64 character ':' at offset 3"},
    {S("data:text/plain,hello"), "data: URI is not base64-encoded"},
    {S("data:,Zm9v"), "data: URI is not base64-encoded"},
    {S("data:base64,Zm9v"), "data: URI is not base64-encoded"},
    {S("data:image/png;base64;charset=utf-8,Zm9v"), "data: URI is not base64-encoded"},
    {S("data:image/png;base64x,Zm9v"), "data: URI is not base64-encoded"},
    {S("data:image/png;base64"), "data: URI has no ',' before its data"},
    {S("data:image/png;base64,"), "empty base64"},
    {S("data:image/png;base64,\r\n"), "empty base64"},
    {S("data:image png;base64,Zm9v"), "data: URI has an invalid media type"},
    {S("data:image;base64,Zm9v"), "data: URI has an invalid media type"},
    {S("data:image/;base64,Zm9v"), "data: URI has an invalid media type"},
    {S("data:/png;base64,Zm9v"), "data: URI has an invalid media type"},
    {S("data:image/png;base64,Zm9v%"), "invalid base64 character '%' at offset 26"},
    {S("data:image/png;base64,data:image/png;base64,Zm9v"), "invalid base64 character ':' at offset 26"},
};

START_TEST(bad_input)
{
    const struct bad_case *c = &bad_cases[_i];
    uint8_t *out = (uint8_t *)1;
    size_t outlen = 99;
    char mime[64], err[256];
    memset(mime, 'x', sizeof mime);
    int rc = srv_base64_decode(c->in, c->len, &out, &outlen, mime, sizeof mime, err, sizeof err);
    ck_assert_msg(rc == -1, "'%s' decoded", c->in);
    ck_assert_str_eq(err, c->msg);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(outlen, 0);
    ck_assert_str_eq(mime, "");
}
END_TEST

/* A media type that does not fit the caller's buffer is refused, not cut. */
START_TEST(mime_too_long)
{
    const char *s = "data:image/png;base64,Zm9v";
    uint8_t *out;
    size_t outlen;
    char mime[10], err[256];
    ck_assert_int_eq(srv_base64_decode(s, strlen(s), &out, &outlen, mime, 9, err, sizeof err), -1);
    ck_assert_str_eq(err, "data: URI media type is too long (9 characters)");
    ck_assert_str_eq(mime, "");
    ck_assert_int_eq(srv_base64_decode(s, strlen(s), &out, &outlen, mime, 10, err, sizeof err), 0);
    ck_assert_str_eq(mime, "image/png");
    free(out);
}
END_TEST

/* err is always terminated, cut to errlen; err may be NULL with errlen 0. Only len bytes are
 * read: a string need not be terminated. */
START_TEST(err_buffer_and_len)
{
    uint8_t *out;
    size_t outlen;
    char err[10];
    memset(err, 'x', sizeof err);
    ck_assert_int_eq(srv_base64_decode("Z", 1, &out, &outlen, NULL, 0, err, sizeof err), -1);
    ck_assert_str_eq(err, "base64 le");
    ck_assert_int_eq(srv_base64_decode("Z", 1, &out, &outlen, NULL, 0, NULL, 0), -1);
    ck_assert_int_eq(srv_base64_decode(NULL, 0, &out, &outlen, NULL, 0, NULL, 0), -1);

    char text[5] = {'Z', 'm', '9', 'v', '%'};
    ck_assert_int_eq(srv_base64_decode(text, 4, &out, &outlen, NULL, 0, err, sizeof err), 0);
    ck_assert_uint_eq(outlen, 3);
    ck_assert(memcmp(out, "foo", 3) == 0);
    free(out);
}
END_TEST

START_TEST(encode_edges)
{
    size_t n = 99;
    char *s = srv_base64_encode(NULL, 0, &n);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "");
    ck_assert_uint_eq(n, 0);
    free(s);
    s = srv_base64_encode((const uint8_t *)"\xfb\xff\xbf\x00", 4, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "+/+/AA==");
    free(s);
}
END_TEST

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))

int main(void)
{
    Suite *s = suite_create("base64");
    TCase *tc = tcase_create("round_trip");
    tcase_add_loop_test(tc, rfc4648_vectors, 0, N(rfc_vectors));
    tcase_add_loop_test(tc, round_trip, 0, 301);
    tcase_add_test(tc, large);
    tcase_add_test(tc, encode_edges);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("decode");
    tcase_add_loop_test(tc, good_input, 0, N(good_cases));
    tcase_add_loop_test(tc, bad_input, 0, N(bad_cases));
    tcase_add_test(tc, mime_too_long);
    tcase_add_test(tc, err_buffer_and_len);
    suite_add_tcase(s, tc);
    return fx_run(s);
}
