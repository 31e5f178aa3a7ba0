/* test_multipart.c: multipart/form-data bodies built by hand (curl's, LF-only, binary, malformed) and their parts. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/multipart.h"
#include "tests/unit/fixture.h"

#define MAXP 8
#define CT "multipart/form-data; boundary=XyZ"

/* ---- byte buffers ---- */

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* ---- parsing a copy of exactly len bytes, so ASan sees any read past the end ---- */

struct parsed {
    uint8_t *body;
    size_t len;
    struct srv_part parts[MAXP];
    int n, rc;
    char err[256];
};

static void parse(struct parsed *r, const char *ctype, const void *body, size_t len, int maxparts)
{
    ck_assert_int_le(maxparts, MAXP);
    r->body = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(r->body);
    if (len)
        memcpy(r->body, body, len);
    r->len = len;
    r->n = -1;
    memset(r->err, 'x', sizeof r->err);
    r->rc = srv_multipart_parse(r->body, len, ctype, r->parts, maxparts, &r->n, r->err, sizeof r->err);
}

/* Part i must have these fields and exactly these data bytes, pointing into the body. */
static void expect_part(const struct parsed *r, int i, const char *name, const char *filename, const char *ctype,
                        const void *data, size_t len)
{
    ck_assert_msg(r->rc == 0, "parse failed: %s", r->err);
    ck_assert_int_lt(i, r->n);
    const struct srv_part *p = &r->parts[i];
    ck_assert_str_eq(p->name, name);
    ck_assert_str_eq(p->filename, filename);
    ck_assert_str_eq(p->content_type, ctype);
    ck_assert_msg(p->len == len, "part %d: %zu bytes, expected %zu", i, p->len, len);
    ck_assert(p->data >= r->body && p->data + p->len <= r->body + r->len);
    ck_assert_msg(len == 0 || memcmp(p->data, data, len) == 0, "part %d: data differs", i);
}

/* ---- what clients send ---- */

/* curl 8's bytes for `curl -F image=@x.png -F other=value`, with a "PNG" that holds
 * CRLFs, NULs, "\r\n--" and most of the delimiter. */
START_TEST(curl_form)
{
    static const char boundary[] = "------------------------d74496d66958873e";
    static const uint8_t png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\r\n--\r\n------------------------d74496d6\0\r\n";
    struct buf b = {0};
    puts_(&b, "--"), puts_(&b, boundary), puts_(&b, "\r\n");
    puts_(&b, "Content-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n");
    puts_(&b, "Content-Type: image/png\r\n\r\n");
    size_t png_at = b.n;
    put(&b, png, sizeof png - 1);
    puts_(&b, "\r\n--"), puts_(&b, boundary), puts_(&b, "\r\n");
    puts_(&b, "Content-Disposition: form-data; name=\"other\"\r\n\r\n");
    size_t value_at = b.n;
    puts_(&b, "value\r\n--"), puts_(&b, boundary), puts_(&b, "--\r\n");

    struct parsed r;
    parse(&r, "multipart/form-data; boundary=------------------------d74496d66958873e", b.p, b.n, MAXP);
    ck_assert_msg(r.rc == 0, "%s", r.err);
    ck_assert_int_eq(r.n, 2);
    expect_part(&r, 0, "image", "x.png", "image/png", png, sizeof png - 1);
    expect_part(&r, 1, "other", "", "", "value", 5);
    ck_assert_ptr_eq(r.parts[0].data, r.body + png_at);
    ck_assert_ptr_eq(r.parts[1].data, r.body + value_at);
    free(r.body), free(b.p);
}
END_TEST

/* Bare LF everywhere (hand-written clients, some proxies). */
START_TEST(lf_only)
{
    static const char body[] = "--XyZ\nContent-Disposition: form-data; name=a\n\nvalue1\n"
                               "--XyZ\ncontent-disposition: form-data; name=\"b\"\n\nline1\r\nline2\n--XyZ--\n";
    struct parsed r;
    parse(&r, CT, body, sizeof body - 1, MAXP);
    ck_assert_int_eq(r.n, 2);
    expect_part(&r, 0, "a", "", "", "value1", 6);
    expect_part(&r, 1, "b", "", "", "line1\r\nline2", 12);
    free(r.body);
}
END_TEST

START_TEST(preamble_and_epilogue)
{
    static const char body[] = "This is the preamble.\r\nIt has --XyZ in it, not at a line start.\r\n"
                               "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nA\r\n"
                               "--XyZ--\r\nEpilogue, even with\r\n--XyZ\r\nin it.\r\n";
    struct parsed r;
    parse(&r, CT, body, sizeof body - 1, MAXP);
    ck_assert_int_eq(r.n, 1);
    expect_part(&r, 0, "a", "", "", "A", 1);
    free(r.body);
}
END_TEST

/* RFC 2046 transport padding: spaces and tabs between a delimiter and its line end. */
START_TEST(transport_padding)
{
    static const char body[] = "--XyZ \t\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nA\r\n"
                               "--XyZ  \nContent-Disposition: form-data; name=\"b\"\n\nB\n--XyZ--";
    struct parsed r;
    parse(&r, CT, body, sizeof body - 1, MAXP);
    ck_assert_int_eq(r.n, 2);
    expect_part(&r, 0, "a", "", "", "A", 1);
    expect_part(&r, 1, "b", "", "", "B", 1);
    free(r.body);
}
END_TEST

/* ---- data that looks like a delimiter but is not ---- */

static const struct {
    const char *name;
    const char *data;
    size_t len;
} payloads[] = {
#define P(name, lit) {name, lit, sizeof(lit) - 1}
    P("empty", ""),
    P("CRLF dash dash", "\r\n--\r\n--"),
    P("boundary prefix", "a\r\n--Xy\r\n--X"),
    P("boundary then a letter", "a\r\n--XyZx\r\nb"),
    P("boundary then one dash", "a\r\n--XyZ-x\r\n"),
    P("boundary, padding, text", "a\r\n--XyZ \tx\r\n"),
    P("boundary not at a line start", "a--XyZ\r\nb--XyZ--"),
    P("NULs", "\0\0\0\0"),
    P("ends in CR", "abc\r"),
    P("ends in LF", "abc\n"),
    P("ends in CRLF", "abc\r\n"),
    P("only CRLF", "\r\n"),
    P("starts with CRLF", "\r\nabc"),
    P("wrong case", "\r\n--xyz\r\n"),
#undef P
};

START_TEST(binary_data)
{
    struct buf b = {0};
    puts_(&b, "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n");
    put(&b, payloads[_i].data, payloads[_i].len);
    puts_(&b, "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"g\"\r\n\r\n");
    put(&b, payloads[_i].data, payloads[_i].len);
    puts_(&b, "\r\n--XyZ--");
    struct parsed r;
    parse(&r, CT, b.p, b.n, MAXP);
    ck_assert_msg(r.rc == 0, "%s: %s", payloads[_i].name, r.err);
    ck_assert_int_eq(r.n, 2);
    expect_part(&r, 0, "f", "", "", payloads[_i].data, payloads[_i].len);
    expect_part(&r, 1, "g", "", "", payloads[_i].data, payloads[_i].len);
    free(r.body), free(b.p);
}
END_TEST

/* Every byte value, and a random megabyte, survive intact. */
START_TEST(all_bytes)
{
    size_t n = (size_t)1 << 20;
    uint8_t *data = malloc(n);
    ck_assert_ptr_nonnull(data);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        data[i] = i < 256 ? (uint8_t)i : (uint8_t)x;
    }
    struct buf b = {0};
    puts_(&b, "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"r.bin\"\r\n"
              "Content-Type: application/octet-stream\r\n\r\n");
    put(&b, data, n);
    puts_(&b, "\r\n--XyZ--\r\n");
    struct parsed r;
    parse(&r, CT, b.p, b.n, 1);
    ck_assert_int_eq(r.n, 1);
    expect_part(&r, 0, "image", "r.bin", "application/octet-stream", data, n);
    free(r.body), free(b.p), free(data);
}
END_TEST

/* An empty part, sent with and without the CRLF that ends its (empty) data. */
START_TEST(empty_parts)
{
    static const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\r\n"
                               "--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n"
                               "--XyZ\nContent-Disposition: form-data; name=\"c\"\n\n"
                               "--XyZ--";
    struct parsed r;
    parse(&r, CT, body, sizeof body - 1, MAXP);
    ck_assert_int_eq(r.n, 3);
    expect_part(&r, 0, "a", "", "", "", 0);
    expect_part(&r, 1, "b", "", "", "", 0);
    expect_part(&r, 2, "c", "", "", "", 0);
    free(r.body);

    parse(&r, CT, "--XyZ--\r\n", 9, MAXP);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 0);
    free(r.body);
}
END_TEST

/* ---- the boundary in the request's Content-Type ---- */

static const struct {
    const char *ctype, *boundary;
} boundaries[] = {
    {"multipart/form-data; boundary=XyZ", "XyZ"},
    {"multipart/form-data; boundary=\"XyZ\"", "XyZ"},
    {"Multipart/Form-Data;boundary=XyZ;charset=utf-8", "XyZ"},
    {"multipart/form-data; charset=utf-8; boundary=XyZ", "XyZ"},
    {"multipart/form-data; foo=\"a;boundary=wrong\"; BOUNDARY=XyZ", "XyZ"},
    {"multipart/form-data; boundary = \"XyZ\" ;", "XyZ"},
    {"multipart/form-data; boundary=\"a b:c\"", "a b:c"},
    {"multipart/form-data; boundary=----=_Part_0_12345.6789", "----=_Part_0_12345.6789"},
    {"multipart/form-data; boundary=\"(')+_,-./:=?\"", "(')+_,-./:=?"},
    {"multipart/form-data; boundary=1234567890123456789012345678901234567890123456789012345678901234567890",
     "1234567890123456789012345678901234567890123456789012345678901234567890"},
};

START_TEST(boundary_param)
{
    const char *bd = boundaries[_i].boundary;
    struct buf b = {0};
    puts_(&b, "--"), puts_(&b, bd), puts_(&b, "\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nA\r\n--");
    puts_(&b, bd), puts_(&b, "--\r\n");
    struct parsed r;
    parse(&r, boundaries[_i].ctype, b.p, b.n, MAXP);
    ck_assert_msg(r.rc == 0, "%s: %s", boundaries[_i].ctype, r.err);
    ck_assert_int_eq(r.n, 1);
    expect_part(&r, 0, "a", "", "", "A", 1);
    free(r.body), free(b.p);
}
END_TEST

/* ---- part headers ---- */

static const struct {
    const char *headers; /* the part's header lines, CRLF-terminated */
    const char *name, *filename, *ctype;
} header_cases[] = {
    {"Content-Disposition: form-data; name=\"a\\\"b\"; filename=\"c\\\\d \\\"e\\\".png\"\r\n", "a\"b",
     "c\\d \"e\".png", ""},
    {"Content-Disposition: form-data; name=\"x\"; filename=\"C:\\dir\\x.png\"\r\n", "x", "C:\\dir\\x.png", ""},
    {"Content-Disposition: form-data; name=image; filename=x.png\r\n", "image", "x.png", ""},
    {"Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%e2%82%ac.png\r\n", "f", "", ""},
    {"Content-Disposition: form-data; filename*=UTF-8''a.png; filename=\"b.png\"; name=\"f\"\r\n", "f", "b.png", ""},
    {"Content-Disposition: form-data; name=\"f\"; filenames=\"x\"\r\n", "f", "", ""},
    {"CONTENT-DISPOSITION: FORM-DATA; NAME=\"f\"; FileName=\"A.PNG\"\r\n", "f", "A.PNG", ""},
    {"Content-Disposition: form-data; name=\"semi;colon\"; filename=\"a;b.png\"\r\n", "semi;colon", "a;b.png", ""},
    {"Content-Disposition:form-data;name=\"f\";filename=\"\"\r\n", "f", "", ""},
    {"Content-Disposition: form-data; name=\"caf\xc3\xa9\"\r\n", "caf\xc3\xa9", "", ""},
    {"Content-Disposition: form-data; name=\"a\"; name=\"b\"\r\n", "a", "", ""},
    {"Content-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"b\"\r\n", "a", "", ""},
    {"Content-Disposition: form-data;\r\n name=\"folded\";\r\n\tfilename=\"f.png\"\r\n", "folded", "f.png", ""},
    {"Content-Disposition : form-data; name=\"sp\"\r\n", "sp", "", ""},
    {"X-Other: 1\r\nContent-Transfer-Encoding: binary\r\ncontent-disposition: form-data; name=\"h\"\r\n"
     "content-type:   text/plain;\r\n\tcharset=utf-8  \r\n",
     "h", "", "text/plain; charset=utf-8"},
    {"Content-Type: IMAGE/JPEG\r\nContent-Disposition: form-data; name=\"i\"; filename=\"a.jpg\"\r\n", "i", "a.jpg",
     "IMAGE/JPEG"},
};

START_TEST(part_headers)
{
    struct buf b = {0};
    puts_(&b, "--XyZ\r\n"), puts_(&b, header_cases[_i].headers), puts_(&b, "\r\nDATA\r\n--XyZ--\r\n");
    struct parsed r;
    parse(&r, CT, b.p, b.n, MAXP);
    ck_assert_msg(r.rc == 0, "case %d: %s", _i, r.err);
    ck_assert_int_eq(r.n, 1);
    expect_part(&r, 0, header_cases[_i].name, header_cases[_i].filename, header_cases[_i].ctype, "DATA", 4);
    free(r.body), free(b.p);
}
END_TEST

static char *repeat(const char *unit, int times, const char *prefix)
{
    size_t n = strlen(prefix) + strlen(unit) * (size_t)times;
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    strcpy(s, prefix);
    for (int i = 0; i < times; i++)
        strcat(s, unit);
    return s;
}

/* Too-long values are cut to the field, never past it, and never inside a UTF-8 character. */
START_TEST(truncation)
{
    char *name = repeat("a", 300, ""), *file = repeat("b", 400, ""), *ctype = repeat("c", 200, "");
    struct buf b = {0};
    puts_(&b, "--XyZ\r\nContent-Disposition: form-data; name=\""), puts_(&b, name);
    puts_(&b, "\"; filename="), puts_(&b, file), puts_(&b, "\r\nContent-Type: "), puts_(&b, ctype);
    puts_(&b, "\r\n\r\nx\r\n--XyZ--");
    struct parsed r;
    parse(&r, CT, b.p, b.n, MAXP);
    name[127] = file[255] = ctype[127] = '\0';
    expect_part(&r, 0, name, file, ctype, "x", 1);
    free(r.body), free(b.p), free(name), free(file), free(ctype);

    static const struct {
        const char *unit, *prefix;
        size_t keep; /* bytes of the result */
    } utf8[] = {
        {"\xc3\xa9", "", 126},   /* 2-byte characters: 63 fit, the 64th would be split */
        {"\xe2\x82\xac", "a", 127}, /* 1 + 42 * 3 = 127: fits exactly */
        {"\xe2\x82\xac", "ab", 125}, /* 2 + 41 * 3, the 42nd would be split */
        {"\xf0\x9f\x98\x80", "abc", 127}, /* 3 + 31 * 4 = 127 */
        {"\xf0\x9f\x98\x80", "", 124},
    };
    for (size_t k = 0; k < sizeof utf8 / sizeof utf8[0]; k++) {
        char *v = repeat(utf8[k].unit, 100, utf8[k].prefix);
        struct buf c = {0};
        puts_(&c, "--XyZ\r\nContent-Disposition: form-data; name=\""), puts_(&c, v), puts_(&c, "\"\r\n\r\n\r\n--XyZ--");
        parse(&r, CT, c.p, c.n, MAXP);
        v[utf8[k].keep] = '\0';
        expect_part(&r, 0, v, "", "", "", 0);
        free(r.body), free(c.p), free(v);
    }
}
END_TEST

/* Exactly maxparts parts are fine; one more is not. */
START_TEST(part_limit)
{
    static const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nA\r\n"
                               "--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nB\r\n"
                               "--XyZ\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\nC\r\n--XyZ--\r\n";
    struct parsed r;
    parse(&r, CT, body, sizeof body - 1, 3);
    ck_assert_int_eq(r.n, 3);
    expect_part(&r, 2, "c", "", "", "C", 1);
    free(r.body);
    static const struct {
        int max;
        const char *msg;
    } limits[] = {{2, "more than 2 parts"}, {1, "more than 1 part"}, {0, "more than 0 parts"}, {-5, "more than 0 parts"}};
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        parse(&r, CT, body, sizeof body - 1, limits[k].max);
        ck_assert_int_eq(r.rc, -1);
        ck_assert_int_eq(r.n, 0);
        ck_assert_str_eq(r.err, limits[k].msg);
        free(r.body);
    }
}
END_TEST

/* ---- malformed requests ---- */

#define OK_BODY "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nA\r\n--XyZ--\r\n"
#define CD "Content-Disposition: form-data; name=\"a\"\r\n"
#define S(lit) lit, sizeof(lit) - 1

static const struct bad_case {
    const char *ctype;
    const char *body;
    size_t len;
    const char *msg; /* the whole message */
} bad_cases[] = {
    {"multipart/form-data", S(OK_BODY), "multipart body has no boundary parameter"},
    {NULL, S(OK_BODY), "multipart body has no boundary parameter"},
    {"multipart/form-data; charset=utf-8", S(OK_BODY), "multipart body has no boundary parameter"},
    {"multipart/form-data; boundary=", S(OK_BODY), "multipart boundary is empty"},
    {"multipart/form-data; boundary=\"\"", S(OK_BODY), "multipart boundary is empty"},
    {"multipart/form-data; boundary=12345678901234567890123456789012345678901234567890123456789012345678901",
     S(OK_BODY), "multipart boundary is longer than 70 characters"},
    {"multipart/form-data; boundary=\"x\\\"y\"", S(OK_BODY), "multipart boundary contains an invalid character"},
    {"multipart/form-data; boundary=x&y", S(OK_BODY), "multipart boundary contains an invalid character"},
    {"multipart/form-data; boundary=\"ab \"", S(OK_BODY), "multipart boundary ends with a space"},
    {"multipart/form-data; boundary=\"XyZ", S(OK_BODY), "multipart Content-Type has a malformed parameter"},
    {"multipart/form-data; boundary=XyZ junk", S(OK_BODY), "multipart Content-Type has a malformed parameter"},
    {"multipart/form-data; =x; boundary=XyZ", S(OK_BODY), "multipart Content-Type has a malformed parameter"},
    {"multipart/form-data; boundary=XyZ; name=\"x", S(OK_BODY), "multipart Content-Type has a malformed parameter"},
    {CT, S(""), "multipart body does not start with the boundary"},
    {CT, S("hello world"), "multipart body does not start with the boundary"},
    {CT, S("--XyZx\r\n" CD "\r\nA\r\n--XyZx--\r\n"), "multipart body does not start with the boundary"},
    {CT, S("preamble --XyZ\r\n" CD "\r\nA"), "multipart body does not start with the boundary"},
    {CT, S("--xyz\r\n" CD "\r\nA\r\n--xyz--\r\n"), "multipart body does not start with the boundary"},
    {CT, S("--XyZ\r\n" CD "\r\nA\r\n--XyZ\r\nContent-Disposition: form-data; filename=\"x\"\r\n\r\nB\r\n--XyZ--"),
     "multipart part 2 has no Content-Disposition name"},
    {CT, S("--XyZ\r\n\r\nA\r\n--XyZ--"), "multipart part 1 has no Content-Disposition name"},
    {CT, S("--XyZ\r\nContent-Type: text/plain\r\n\r\nA\r\n--XyZ--"), "multipart part 1 has no Content-Disposition name"},
    {CT, S("--XyZ\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has no Content-Disposition name"},
    {CT, S("--XyZ\r\nContent-Disposition: form-data\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has no Content-Disposition name"},
    {CT, S("--XyZ\r\n" CD "\r\nA"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\n" CD "\r\nA\r\n"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\n" CD "\r\nA\r\n--XyZ"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\n" CD "\r\nA\r\n--XyZ-"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\n" CD "\r\nA\r\n--XyZ\r\n"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\n" CD "\r\nA--XyZ--\r\n"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\nContent-Disposition: form-da"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\n" CD), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\nContent-Disposition: form-data;\r\n"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\n"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ-"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ \r"), "multipart body ends before its closing boundary"},
    {CT, S("--XyZ\r\n" CD "--XyZ--\r\n"), "multipart part 1 has a malformed header line"},
    {CT, S("--XyZ\r\nnot a header\r\n\r\nA\r\n--XyZ--"), "multipart part 1 has a malformed header line"},
    {CT, S("--XyZ\r\n: empty name\r\n\r\nA\r\n--XyZ--"), "multipart part 1 has a malformed header line"},
    {CT, S("--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has a Content-Disposition that is not form-data"},
    {CT, S("--XyZ\r\nContent-Disposition: name=\"a\"\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has a Content-Disposition that is not form-data"},
    {CT, S("--XyZ\r\nContent-Disposition: form-data; name=\"abc\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has a malformed Content-Disposition"},
    {CT, S("--XyZ\r\nContent-Disposition: form-data; name\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has a malformed Content-Disposition"},
    {CT, S("--XyZ\r\nContent-Disposition: form-data; name=\"a\" x\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has a malformed Content-Disposition"},
    {CT, S("--XyZ\r\nContent-Disposition: form-data; name=\"a\0b\"\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has a malformed Content-Disposition"},
    {CT, S("--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n b\"\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has a malformed Content-Disposition"},
    {CT, S("--XyZ\r\n" CD "Content-Type: image/\0png\r\n\r\nA\r\n--XyZ--"),
     "multipart part 1 has a malformed Content-Type"},
};

START_TEST(bad_input)
{
    const struct bad_case *c = &bad_cases[_i];
    struct parsed r;
    parse(&r, c->ctype, c->body, c->len, MAXP);
    ck_assert_msg(r.rc == -1, "case %d parsed", _i);
    ck_assert_int_eq(r.n, 0);
    ck_assert_str_eq(r.err, c->msg);
    free(r.body);
}
END_TEST

/* err is cut to errlen and terminated; NULL with 0 is allowed. */
START_TEST(err_buffer)
{
    int n = 7;
    char err[12];
    ck_assert_int_eq(srv_multipart_parse((const uint8_t *)"x", 1, CT, NULL, 0, &n, err, sizeof err), -1);
    ck_assert_str_eq(err, "multipart b");
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(srv_multipart_parse((const uint8_t *)"x", 1, CT, NULL, 0, &n, NULL, 0), -1);
    ck_assert_int_eq(srv_multipart_parse(NULL, 0, CT, NULL, 0, &n, NULL, 0), -1);
}
END_TEST

static const struct {
    const char *ctype;
    bool want;
} is_cases[] = {
    {"multipart/form-data", true},
    {"Multipart/Form-Data; boundary=x", true},
    {"  multipart/form-data  ", true},
    {"multipart/form-data;", true},
    {"MULTIPART/FORM-DATA ; boundary=\"x\"", true},
    {"multipart/form-dataX", false},
    {"multipart/form", false},
    {"multipart/mixed; boundary=x", false},
    {"application/json", false},
    {"text/plain; x=multipart/form-data", false},
    {"", false},
    {NULL, false},
};

START_TEST(is_multipart)
{
    ck_assert_msg(srv_is_multipart(is_cases[_i].ctype) == is_cases[_i].want, "'%s'",
                  is_cases[_i].ctype ? is_cases[_i].ctype : "(null)");
}
END_TEST

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))

int main(void)
{
    Suite *s = suite_create("multipart");
    TCase *tc = tcase_create("parts");
    tcase_add_test(tc, curl_form);
    tcase_add_test(tc, lf_only);
    tcase_add_test(tc, preamble_and_epilogue);
    tcase_add_test(tc, transport_padding);
    tcase_add_loop_test(tc, binary_data, 0, N(payloads));
    tcase_add_test(tc, all_bytes);
    tcase_add_test(tc, empty_parts);
    tcase_add_loop_test(tc, boundary_param, 0, N(boundaries));
    tcase_add_loop_test(tc, part_headers, 0, N(header_cases));
    tcase_add_test(tc, truncation);
    tcase_add_test(tc, part_limit);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad");
    tcase_add_loop_test(tc, bad_input, 0, N(bad_cases));
    tcase_add_test(tc, err_buffer);
    tcase_add_loop_test(tc, is_multipart, 0, N(is_cases));
    suite_add_tcase(s, tc);
    return fx_run(s);
}
