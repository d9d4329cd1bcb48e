/* test_hpack.c — HPACK (RFC 7541) through the public API: Appendix C byte for
 * byte, every decoder error code, table size updates, indexing rules, memory. */
#include <stddef.h>

#include "t.h"
#include "sluice.h"
#include "hpack_corpus.h"

/* ---- helpers ------------------------------------------------------------ */

#define NV(n, v)                                                               \
    { (const uint8_t *)(n), (const uint8_t *)(v), sizeof(n) - 1,               \
      sizeof(v) - 1, 0 }
#define NVF(n, v, f)                                                           \
    { (const uint8_t *)(n), (const uint8_t *)(v), sizeof(n) - 1,               \
      sizeof(v) - 1, (f) }
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Hex text (spaces ignored, as the RFC prints it) to bytes. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else
            continue;
        if (hi < 0) {
            hi = d;
        } else {
            if (n < cap)
                out[n] = (uint8_t)(hi << 4 | d);
            n++;
            hi = -1;
        }
    }
    return n;
}

/* What the emit callback saw: "name: value\n" lines and the flags. */
typedef struct cap {
    char text[16384];
    size_t len;
    uint32_t flags[256];
    int n;
    int fail_at;  /* return fail_rc at this field (1-based), 0 = never */
    int fail_rc;
} cap;

static int cap_emit(void *ud, const sluice_nv *nv)
{
    cap *c = ud;
    c->n++;
    if (c->fail_at && c->n == c->fail_at)
        return c->fail_rc;
    if (c->n <= 256)
        c->flags[c->n - 1] = nv->flags;
    if (c->len + nv->name_len + nv->value_len + 3 < sizeof(c->text)) {
        /* an empty string may come as NULL: no memcpy(.., NULL, 0) */
        if (nv->name_len)
            memcpy(c->text + c->len, nv->name, nv->name_len);
        c->len += nv->name_len;
        c->text[c->len++] = ':';
        c->text[c->len++] = ' ';
        if (nv->value_len)
            memcpy(c->text + c->len, nv->value, nv->value_len);
        c->len += nv->value_len;
        c->text[c->len++] = '\n';
    }
    c->text[c->len] = '\0';
    return 0;
}

static void cap_reset(cap *c)
{
    memset(c, 0, sizeof(*c));
}

/* Decode hex text on dec into c (reset first); returns the decode result. */
static int dec_hex(sluice_hpack_decoder *dec, const char *hex, cap *c)
{
    uint8_t buf[1024];
    size_t n = unhex(hex, buf, sizeof(buf));
    cap_reset(c);
    return sluice_hpack_decode(dec, buf, n, cap_emit, c);
}

static int dec_bytes(sluice_hpack_decoder *dec, const uint8_t *b, size_t n, cap *c)
{
    cap_reset(c);
    return sluice_hpack_decode(dec, b, n, cap_emit, c);
}

static sluice_hpack_decoder *dec_new(uint32_t table, uint32_t list_max)
{
    sluice_hpack_options o;
    sluice_hpack_options_init(&o);
    o.max_table_size = table;
    if (list_max)
        o.max_header_list_size = list_max;
    sluice_hpack_decoder *d = NULL;
    if (sluice_hpack_decoder_new(&d, &o, NULL) != 0)
        return NULL;
    return d;
}

static sluice_hpack_encoder *enc_new(uint32_t table, int huffman)
{
    sluice_hpack_options o;
    sluice_hpack_options_init(&o);
    o.max_table_size = table;
    o.huffman = huffman;
    sluice_hpack_encoder *e = NULL;
    if (sluice_hpack_encoder_new(&e, &o, NULL) != 0)
        return NULL;
    return e;
}

/* Encode into out (cap = the bound, which must fit); returns the result. */
static int enc(sluice_hpack_encoder *e, const sluice_nv *nv, size_t n,
               uint8_t *out, size_t outcap, size_t *len)
{
    size_t bound = sluice_hpack_encode_bound(e, nv, n);
    if (bound > outcap)
        return -9999;
    *len = 0;
    return sluice_hpack_encode(e, nv, n, out, bound, len);
}

/* Expect the encoder to write exactly the bytes of hex. */
#define CHECK_ENC(e, nv, hex)                                                  \
    do {                                                                       \
        uint8_t got_[2048], want_[2048];                                       \
        size_t gl_ = 0, wl_ = unhex((hex), want_, sizeof(want_));              \
        CHECK_INT(enc((e), (nv), NELEM(nv), got_, sizeof(got_), &gl_), 0);     \
        CHECK_MEM(got_, gl_, want_, wl_);                                      \
    } while (0)

/* ---- options ------------------------------------------------------------- */

TEST(options_defaults)
{
    sluice_hpack_options o;
    memset(&o, 0xa5, sizeof(o));
    sluice_hpack_options_init(&o);
    CHECK_INT(o.struct_size, sizeof(o));
    CHECK_INT(o.max_table_size, 4096);
    CHECK_INT(o.max_header_list_size, 65536);
    CHECK_INT(o.max_indexed_value_len, 3072);
    CHECK_INT(o.huffman, 1);
}

/* A caller built against an older, shorter struct: the library must not read
 * the fields past struct_size (here huffman, whose garbage says "off"). */
TEST(options_old_struct_size_ignores_later_fields)
{
    sluice_hpack_options o;
    memset(&o, 0, sizeof(o));
    sluice_hpack_options_init_versioned(offsetof(sluice_hpack_options, huffman), &o);
    CHECK_INT(o.struct_size, offsetof(sluice_hpack_options, huffman));
    CHECK_INT(o.max_table_size, 4096);
    o.huffman = 0; /* beyond struct_size: must be ignored, default is 1 */
    sluice_hpack_encoder *e = NULL;
    CHECK_INT(sluice_hpack_encoder_new(&e, &o, NULL), 0);
    sluice_nv nv[] = { NV(":authority", "www.example.com") };
    /* Huffman-coded as in RFC 7541 C.4.1 */
    CHECK_ENC(e, nv, "41 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff");
    sluice_hpack_encoder_free(e);
}

TEST(new_rejects_null_out)
{
    CHECK_INT(sluice_hpack_encoder_new(NULL, NULL, NULL), SLUICE_ERR_INVAL);
    CHECK_INT(sluice_hpack_decoder_new(NULL, NULL, NULL), SLUICE_ERR_INVAL);
    sluice_hpack_encoder_free(NULL);
    sluice_hpack_decoder_free(NULL);
}

/* ---- RFC 7541 C.2: single representations --------------------------------- */

/* C.2.1 literal with incremental indexing, new name. */
TEST(rfc_c2_1_literal_indexed)
{
    const char *hex = "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572";
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, hex, &c), 0);
    CHECK_STR(c.text, "custom-key: custom-header\n");
    CHECK_INT(c.flags[0], 0);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 55);
    sluice_hpack_decoder_free(d);

    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv nv[] = { NV("custom-key", "custom-header") };
    CHECK_ENC(e, nv, hex);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 55);
    sluice_hpack_encoder_free(e);
}

/* C.2.2 literal without indexing, indexed name. :path is never indexed by
 * the sluice rule, so the plain field and the NO_INDEX flag give the same. */
TEST(rfc_c2_2_literal_not_indexed)
{
    const char *hex = "040c 2f73 616d 706c 652f 7061 7468";
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, hex, &c), 0);
    CHECK_STR(c.text, ":path: /sample/path\n");
    CHECK_INT(c.flags[0], 0);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 0);
    sluice_hpack_decoder_free(d);

    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv nv[] = { NV(":path", "/sample/path") };
    CHECK_ENC(e, nv, hex);
    sluice_nv nv2[] = { NVF(":path", "/sample/path", SLUICE_NV_NO_INDEX) };
    CHECK_ENC(e, nv2, hex);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 0);
    sluice_hpack_encoder_free(e);

    /* NO_INDEX on a name the encoder would index. */
    e = enc_new(4096, 0);
    sluice_nv nv3[] = { NVF("custom-key", "custom-header", SLUICE_NV_NO_INDEX) };
    CHECK_ENC(e, nv3, "000a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    CHECK_INT(sluice_hpack_encoder_table_size(e), 0);
    sluice_hpack_encoder_free(e);
}

/* C.2.3 literal never indexed: the decoder must report it. */
TEST(rfc_c2_3_literal_never_indexed)
{
    const char *hex = "1008 7061 7373 776f 7264 0673 6563 7265 74";
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, hex, &c), 0);
    CHECK_STR(c.text, "password: secret\n");
    CHECK_INT(c.flags[0], SLUICE_NV_NEVER_INDEX);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 0);
    sluice_hpack_decoder_free(d);

    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv nv[] = { NVF("password", "secret", SLUICE_NV_NEVER_INDEX) };
    CHECK_ENC(e, nv, hex);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 0);
    sluice_hpack_encoder_free(e);
}

/* C.2.4 indexed field. */
TEST(rfc_c2_4_indexed)
{
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, "82", &c), 0);
    CHECK_STR(c.text, ":method: GET\n");
    CHECK_INT(sluice_hpack_decoder_table_size(d), 0);
    sluice_hpack_decoder_free(d);

    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv nv[] = { NV(":method", "GET") };
    CHECK_ENC(e, nv, "82");
    sluice_hpack_encoder_free(e);
}

/* ---- RFC 7541 C.3 / C.4: requests on one connection ----------------------- */

static const char *const c3_hex[3] = {
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
};
static const char *const c4_hex[3] = {
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
};
static const char *const c3_text[3] = {
    ":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\n",
    ":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\n"
    "cache-control: no-cache\n",
    ":method: GET\n:scheme: https\n:path: /index.html\n"
    ":authority: www.example.com\ncustom-key: custom-value\n",
};
static const size_t c3_size[3] = { 57, 110, 164 };

static const sluice_nv c3_req1[] = {
    NV(":method", "GET"), NV(":scheme", "http"), NV(":path", "/"),
    NV(":authority", "www.example.com"),
};
static const sluice_nv c3_req2[] = {
    NV(":method", "GET"), NV(":scheme", "http"), NV(":path", "/"),
    NV(":authority", "www.example.com"), NV("cache-control", "no-cache"),
};
static const sluice_nv c3_req3[] = {
    NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/index.html"),
    NV(":authority", "www.example.com"), NV("custom-key", "custom-value"),
};

static void check_requests(const char *const hex[3], int huffman)
{
    sluice_hpack_decoder *d = dec_new(4096, 0);
    CHECK(d);
    cap c;
    for (int i = 0; i < 3; i++) {
        CHECK_INT(dec_hex(d, hex[i], &c), 0);
        CHECK_STR(c.text, c3_text[i]);
        CHECK_INT(sluice_hpack_decoder_table_size(d), c3_size[i]);
    }
    sluice_hpack_decoder_free(d);

    /* Here the sluice indexing rule agrees with the RFC's choices. */
    sluice_hpack_encoder *e = enc_new(4096, huffman);
    CHECK(e);
    CHECK_ENC(e, c3_req1, hex[0]);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 57);
    CHECK_ENC(e, c3_req2, hex[1]);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 110);
    CHECK_ENC(e, c3_req3, hex[2]);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 164);
    sluice_hpack_encoder_free(e);
}

TEST(rfc_c3_requests_plain)
{
    check_requests(c3_hex, 0);
}

TEST(rfc_c4_requests_huffman)
{
    check_requests(c4_hex, 1);
}

/* ---- RFC 7541 C.5 / C.6: responses, 256-byte table, evictions ------------- */

static const char *const c5_hex[3] = {
    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230"
    "3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65"
    "7861 6d70 6c65 2e63 6f6d",
    "4803 3330 37c1 c0bf",
    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220"
    "474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157"
    "454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076"
    "6572 7369 6f6e 3d31",
};
static const char *const c6_hex[3] = {
    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0"
    "82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    "4883 640e ffc1 c0bf",
    "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b"
    "d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27"
    "0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
};
static const char *const c5_text[3] = {
    ":status: 302\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\n"
    "location: https://www.example.com\n",
    ":status: 307\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\n"
    "location: https://www.example.com\n",
    ":status: 200\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:22 GMT\n"
    "location: https://www.example.com\ncontent-encoding: gzip\n"
    "set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1\n",
};
static const size_t c5_size[3] = { 222, 222, 215 };

static const sluice_nv c5_res1[] = {
    NV(":status", "302"), NV("cache-control", "private"),
    NV("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    NV("location", "https://www.example.com"),
};
static const sluice_nv c5_res2[] = {
    NV(":status", "307"), NV("cache-control", "private"),
    NV("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    NV("location", "https://www.example.com"),
};
static const sluice_nv c5_res3[] = {
    NV(":status", "200"), NV("cache-control", "private"),
    NV("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
    NV("location", "https://www.example.com"), NV("content-encoding", "gzip"),
    NV("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
};

/* What sluice's encoder writes for C.5 / C.6. It differs from the RFC only
 * where its indexing rule does: location and set-cookie go as literals
 * without indexing (0f 1f = name 46, 0f 28 = name 55), so the table holds
 * fewer entries (159, 201, 224 bytes), cache-control sits at 64 (c0) and
 * the first date at 63 (bf) in the later responses. The string bytes are
 * the RFC's. The first block announces the 256-byte table (3fe101). */
static const char *const c5_sluice_hex[3] = {
    "3fe101 4803 333032 5807 70726976617465"
    "611d 4d6f6e2c203231204f63742032303133203230 3a31333a323120474d54"
    "0f1f 17 68747470733a2f2f7777772e6578616d706c652e636f6d",
    "4803 333037 c0 bf"
    "0f1f 17 68747470733a2f2f7777772e6578616d706c652e636f6d",
    "88 c0"
    "611d 4d6f6e2c203231204f63742032303133203230 3a31333a323220474d54"
    "0f1f 17 68747470733a2f2f7777772e6578616d706c652e636f6d"
    "5a04 677a6970"
    "0f28 38 666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b"
    "206d61782d6167653d333630303b2076657273696f6e3d31",
};
/* With Huffman: "307" codes to 3 bytes, no shorter than the literal, so
 * sluice sends it raw where the RFC chose Huffman. */
static const char *const c6_sluice_hex[3] = {
    "3fe101 4882 6402 5885 aec3771a4b"
    "6196 d07abe941054d444a8200595040b8166e082a62d1bff"
    "0f1f 91 9d29ad171863c78f0b97c8e9ae82ae43d3",
    "4803 333037 c0 bf"
    "0f1f 91 9d29ad171863c78f0b97c8e9ae82ae43d3",
    "88 c0"
    "6196 d07abe941054d444a8200595040b8166e084a62d1bff"
    "0f1f 91 9d29ad171863c78f0b97c8e9ae82ae43d3"
    "5a83 9bd9ab"
    "0f28 ad 94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f"
    "9587316065c003ed4ee5b1063d5007",
};
static const size_t c5_sluice_size[3] = { 159, 201, 224 };

static void check_responses(const char *const hex[3],
                            const char *const sluice_hex[3], int huffman)
{
    /* Both ends start at 4096 (RFC 9113 §6.5.2); a decoder whose setting is
     * 256 needs the peer to announce it (§4.2) before the RFC's blocks,
     * which assume the 256-byte table from the start. */
    sluice_hpack_decoder *d = dec_new(256, 0);
    CHECK(d);
    cap c;
    CHECK_INT(dec_hex(d, "82", &c), SLUICE_ERR_HPACK_TABLE_SIZE);
    sluice_hpack_decoder_free(d);
    d = dec_new(256, 0);
    CHECK_INT(dec_hex(d, "3fe101", &c), 0);
    CHECK_INT(c.n, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(dec_hex(d, hex[i], &c), 0);
        CHECK_STR(c.text, c5_text[i]);
        CHECK_INT(sluice_hpack_decoder_table_size(d), c5_size[i]);
    }
    sluice_hpack_decoder_free(d);

    sluice_hpack_encoder *e = enc_new(256, huffman);
    CHECK(e);
    d = dec_new(256, 0);
    CHECK(d);
    const sluice_nv *lists[3] = { c5_res1, c5_res2, c5_res3 };
    const size_t lens[3] = { NELEM(c5_res1), NELEM(c5_res2), NELEM(c5_res3) };
    for (int i = 0; i < 3; i++) {
        uint8_t got[1024], want[1024];
        size_t gl = 0, wl = unhex(sluice_hex[i], want, sizeof(want));
        CHECK_INT(enc(e, lists[i], lens[i], got, sizeof(got), &gl), 0);
        CHECK_MEM(got, gl, want, wl);
        CHECK_INT(sluice_hpack_encoder_table_size(e), c5_sluice_size[i]);
        /* and the sluice decoder follows */
        CHECK_INT(dec_bytes(d, got, gl, &c), 0);
        CHECK_STR(c.text, c5_text[i]);
        CHECK_INT(sluice_hpack_decoder_table_size(d), c5_sluice_size[i]);
    }
    sluice_hpack_encoder_free(e);
    sluice_hpack_decoder_free(d);
}

TEST(rfc_c5_responses_plain)
{
    check_responses(c5_hex, c5_sluice_hex, 0);
}

TEST(rfc_c6_responses_huffman)
{
    check_responses(c6_hex, c6_sluice_hex, 1);
}

/* ---- decoder errors, each with its exact code ----------------------------- */

static int decode_fresh(const char *hex)
{
    sluice_hpack_decoder *d = dec_new(4096, 0);
    if (!d)
        return -9999;
    cap c;
    int rc = dec_hex(d, hex, &c);
    sluice_hpack_decoder_free(d);
    return rc;
}

TEST(err_index_zero)
{
    CHECK_INT(decode_fresh("80"), SLUICE_ERR_HPACK_INDEX);
    /* a literal naming index 0 means "new name": not an error */
    CHECK_INT(decode_fresh("4001 6101 62"), 0);
}

TEST(err_index_past_tables)
{
    /* 61 static entries, dynamic table empty: 62 is one too far */
    CHECK_INT(decode_fresh("bd"), 0);
    CHECK_INT(decode_fresh("be"), SLUICE_ERR_HPACK_INDEX);
    /* name reference past the tables, in each literal form */
    CHECK_INT(decode_fresh("7e 0161"), SLUICE_ERR_HPACK_INDEX);
    CHECK_INT(decode_fresh("0f2f 0161"), SLUICE_ERR_HPACK_INDEX);
    CHECK_INT(decode_fresh("1f2f 0161"), SLUICE_ERR_HPACK_INDEX);
    /* one dynamic entry: 62 is valid, 63 is not */
    CHECK_INT(decode_fresh("4001 6101 62 be"), 0);
    CHECK_INT(decode_fresh("4001 6101 62 bf"), SLUICE_ERR_HPACK_INDEX);
    /* 2^32 - 1 fits the integer rule but no table */
    CHECK_INT(decode_fresh("ff 80ffffff0f"), SLUICE_ERR_HPACK_INDEX);
}

TEST(err_integer_overflow)
{
    /* 127 + (2^32 - 1) */
    CHECK_INT(decode_fresh("ff ffffffff0f"), SLUICE_ERR_HPACK_INTEGER);
    /* exactly 2^32 */
    CHECK_INT(decode_fresh("ff 81ffffff0f"), SLUICE_ERR_HPACK_INTEGER);
    /* 6-bit prefix (literal with indexing): 63 + (2^32 - 1) */
    CHECK_INT(decode_fresh("7f ffffffff0f"), SLUICE_ERR_HPACK_INTEGER);
    /* a string length that overflows */
    CHECK_INT(decode_fresh("40 7f ffffffff0f"), SLUICE_ERR_HPACK_INTEGER);
    /* a long run of continuation bytes */
    CHECK_INT(decode_fresh("ff ffffffffffffffffff01"), SLUICE_ERR_HPACK_INTEGER);
    /* size update that overflows */
    CHECK_INT(decode_fresh("3f ffffffff0f"), SLUICE_ERR_HPACK_INTEGER);
}

TEST(err_truncated)
{
    /* integer ends with its continuation bit set */
    CHECK_INT(decode_fresh("ff"), SLUICE_ERR_HPACK_TRUNCATED);
    CHECK_INT(decode_fresh("ff 80"), SLUICE_ERR_HPACK_TRUNCATED);
    CHECK_INT(decode_fresh("3f e1"), SLUICE_ERR_HPACK_TRUNCATED);
    /* string shorter than its length */
    CHECK_INT(decode_fresh("400a 6375 7374"), SLUICE_ERR_HPACK_TRUNCATED);
    CHECK_INT(decode_fresh("4001 6103 6262"), SLUICE_ERR_HPACK_TRUNCATED);
    /* Huffman string shorter than its length */
    CHECK_INT(decode_fresh("418c f1e3 c2"), SLUICE_ERR_HPACK_TRUNCATED);
    /* representation ends before its name or value */
    CHECK_INT(decode_fresh("40"), SLUICE_ERR_HPACK_TRUNCATED);
    CHECK_INT(decode_fresh("4001 61"), SLUICE_ERR_HPACK_TRUNCATED);
    CHECK_INT(decode_fresh("41"), SLUICE_ERR_HPACK_TRUNCATED);
    CHECK_INT(decode_fresh("10"), SLUICE_ERR_HPACK_TRUNCATED);
    CHECK_INT(decode_fresh("00"), SLUICE_ERR_HPACK_TRUNCATED);
    /* a string length (1000) far past the block, under every limit */
    CHECK_INT(decode_fresh("40 7f e906 61"), SLUICE_ERR_HPACK_TRUNCATED);
    /* the empty block is a valid, empty header list */
    CHECK_INT(decode_fresh(""), 0);
}

TEST(err_huffman)
{
    /* control: :authority "a" Huffman-coded is 1f (00011 + 111 padding) */
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, "0181 1f", &c), 0);
    CHECK_STR(c.text, ":authority: a\n");
    sluice_hpack_decoder_free(d);
    /* EOS inside the string (30 one-bits) */
    CHECK_INT(decode_fresh("0184 ffff ffff"), SLUICE_ERR_HPACK_HUFFMAN);
    /* "a" then EOS, then padding */
    CHECK_INT(decode_fresh("0185 1fff ffff ff"), SLUICE_ERR_HPACK_HUFFMAN);
    /* padding of 11 bits (longer than 7) */
    CHECK_INT(decode_fresh("0182 1fff"), SLUICE_ERR_HPACK_HUFFMAN);
    /* padding of only one-bits is required; 000 is not a prefix of EOS */
    CHECK_INT(decode_fresh("0181 18"), SLUICE_ERR_HPACK_HUFFMAN);
    /* a whole byte of padding with nothing before it */
    CHECK_INT(decode_fresh("0181 ff"), SLUICE_ERR_HPACK_HUFFMAN);
    /* bad Huffman in a name */
    CHECK_INT(decode_fresh("4081 ff 0161"), SLUICE_ERR_HPACK_HUFFMAN);
    /* the empty Huffman string is valid */
    CHECK_INT(decode_fresh("0180"), 0);
}

TEST(err_size_update_too_large)
{
    /* 4096 is the limit: 3f e11f */
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, "3fe11f 82", &c), 0);
    CHECK_STR(c.text, ":method: GET\n");
    sluice_hpack_decoder_free(d);
    CHECK_INT(decode_fresh("3fe21f 82"), SLUICE_ERR_HPACK_TABLE_SIZE);
    CHECK_INT(decode_fresh("3fe21f"), SLUICE_ERR_HPACK_TABLE_SIZE);

    /* smaller settings value: 256 allowed, 257 not */
    d = dec_new(256, 0);
    CHECK_INT(dec_hex(d, "3fe101 82", &c), 0);
    sluice_hpack_decoder_free(d);
    d = dec_new(256, 0);
    CHECK_INT(dec_hex(d, "3fe201 82", &c), SLUICE_ERR_HPACK_TABLE_SIZE);
    sluice_hpack_decoder_free(d);
}

TEST(err_size_update_after_field)
{
    CHECK_INT(decode_fresh("82 20"), SLUICE_ERR_HPACK_TABLE_SIZE);
    CHECK_INT(decode_fresh("4001 6101 62 3f e11f"), SLUICE_ERR_HPACK_TABLE_SIZE);
    /* several updates at the start are allowed (§4.2) */
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, "20 3fe11f 82", &c), 0);
    CHECK_STR(c.text, ":method: GET\n");
    sluice_hpack_decoder_free(d);
}

TEST(size_update_evicts)
{
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, c3_hex[0], &c), 0);
    CHECK_INT(dec_hex(d, c3_hex[1], &c), 0);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 110);
    /* down to 60: only the newest entry (cache-control, 53) fits */
    CHECK_INT(dec_hex(d, "3f1d be", &c), 0);
    CHECK_STR(c.text, "cache-control: no-cache\n");
    CHECK_INT(sluice_hpack_decoder_table_size(d), 53);
    CHECK_INT(dec_hex(d, "bf", &c), SLUICE_ERR_HPACK_INDEX);
    sluice_hpack_decoder_free(d);

    d = dec_new(4096, 0);
    CHECK_INT(dec_hex(d, c3_hex[0], &c), 0);
    CHECK_INT(dec_hex(d, "20", &c), 0);
    CHECK_INT(c.n, 0);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 0);
    CHECK_INT(dec_hex(d, "be", &c), SLUICE_ERR_HPACK_INDEX);
    sluice_hpack_decoder_free(d);
}

/* Empty names and values are legal HPACK (HTTP rejects them a layer up):
 * entries of zero bytes, referenced by index and by name. Under clang's
 * UBSan this catches NULL + 0 / memcpy(NULL, .., 0) on an unallocated
 * table or scratch buffer (found by fuzz_hpack). */
TEST(empty_name_and_value_entries)
{
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    /* add ("", ""), index it, literal with its name, never-indexed too */
    CHECK_INT(dec_hex(d, "400000 be 7e00 1f2f00", &c), 0);
    CHECK_STR(c.text, ": \n: \n: \n: \n");
    CHECK_INT(c.flags[3], SLUICE_NV_NEVER_INDEX);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 64);
    sluice_hpack_decoder_free(d);

    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv nv[] = { NV("", ""), NV("", ""), NV("", "x") };
    CHECK_ENC(e, nv, "400000 be 7e0178");
    CHECK_INT(sluice_hpack_encoder_table_size(e), 65);
    sluice_hpack_encoder_free(e);
}

/* An entry larger than the whole table empties it and is not added (§4.4);
 * that is not an error and the field is still emitted. */
TEST(entry_larger_than_table)
{
    sluice_hpack_decoder *d = dec_new(64, 0);
    cap c;
    CHECK_INT(dec_hex(d, "3f21 4001 6101 62", &c), 0); /* announce 64 first */
    CHECK_INT(sluice_hpack_decoder_table_size(d), 34);
    /* 1 + 40 + 32 = 73 > 64 */
    char hex[256] = "4001 7828";
    for (int i = 0; i < 40; i++)
        strcat(hex, "79");
    CHECK_INT(dec_hex(d, hex, &c), 0);
    CHECK_INT(c.n, 1);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 0);
    CHECK_INT(dec_hex(d, "be", &c), SLUICE_ERR_HPACK_INDEX);
    sluice_hpack_decoder_free(d);
}

/* RFC 7541 §4.2: once we lowered SETTINGS_HEADER_TABLE_SIZE, the peer's next
 * block must start with a size update no larger than the new value. */
TEST(err_missing_size_update_after_lowering)
{
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(sluice_hpack_decoder_set_max_table_size(d, 256), 0);
    CHECK_INT(dec_hex(d, "82", &c), SLUICE_ERR_HPACK_TABLE_SIZE);
    sluice_hpack_decoder_free(d);

    d = dec_new(4096, 0);
    CHECK_INT(sluice_hpack_decoder_set_max_table_size(d, 256), 0);
    CHECK_INT(dec_hex(d, "3fe201 82", &c), SLUICE_ERR_HPACK_TABLE_SIZE);
    sluice_hpack_decoder_free(d);

    /* the empty block has no update either */
    d = dec_new(4096, 0);
    CHECK_INT(sluice_hpack_decoder_set_max_table_size(d, 256), 0);
    CHECK_INT(dec_hex(d, "", &c), SLUICE_ERR_HPACK_TABLE_SIZE);
    sluice_hpack_decoder_free(d);

    /* with the update it decodes, and the table was trimmed to fit */
    d = dec_new(4096, 0);
    CHECK_INT(dec_hex(d, c3_hex[0], &c), 0);
    CHECK_INT(dec_hex(d, c3_hex[1], &c), 0);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 110);
    CHECK_INT(sluice_hpack_decoder_set_max_table_size(d, 100), 0);
    CHECK_INT(dec_hex(d, "3f45 be", &c), 0);
    CHECK_STR(c.text, "cache-control: no-cache\n");
    CHECK_INT(sluice_hpack_decoder_table_size(d), 53);
    /* only the first block after the change needs it */
    CHECK_INT(dec_hex(d, "be", &c), 0);
    /* and the new limit holds from now on */
    CHECK_INT(dec_hex(d, "3f46", &c), SLUICE_ERR_HPACK_TABLE_SIZE);
    sluice_hpack_decoder_free(d);

    /* an update to a smaller size, then up to the new limit, is fine */
    d = dec_new(4096, 0);
    CHECK_INT(sluice_hpack_decoder_set_max_table_size(d, 256), 0);
    CHECK_INT(dec_hex(d, "20 3fe101 82", &c), 0);
    sluice_hpack_decoder_free(d);
}

/* The decoded list may exceed max_header_list_size: the decoder still
 * consumes the whole block and keeps its table in sync with the peer. */
TEST(header_list_too_large_keeps_table_in_sync)
{
    sluice_hpack_decoder *d = dec_new(4096, 100);
    CHECK(d);
    char hex[512] = "4003 782d61 3c"; /* x-a: 60 * 'a' -> 3 + 60 + 32 = 95 */
    for (int i = 0; i < 60; i++)
        strcat(hex, "61");
    strcat(hex, "4003 782d62 0a 62626262626262626262"); /* x-b, 45: 140 > 100 */
    strcat(hex, "4003 782d63 01 63");                    /* x-c, 36 */
    cap c;
    CHECK_INT(dec_hex(d, hex, &c), SLUICE_ERR_HEADER_LIST_TOO_LARGE);
    /* x-a fit the limit; nothing past the limit was emitted */
    CHECK_INT(c.n, 1);
    CHECK(strncmp(c.text, "x-a: aaa", 8) == 0);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 95 + 45 + 36);
    CHECK_INT(dec_hex(d, "be", &c), 0);
    CHECK_STR(c.text, "x-c: c\n");
    CHECK_INT(dec_hex(d, "bf", &c), 0);
    CHECK_STR(c.text, "x-b: bbbbbbbbbb\n");
    CHECK_INT(dec_hex(d, "c0", &c), 0);
    CHECK_INT(c.n, 1);
    CHECK_INT(c.len, 3 + 2 + 60 + 1);
    sluice_hpack_decoder_free(d);

    /* boundary: a list of exactly 100 passes, 101 fails */
    d = dec_new(4096, 100);
    /* name 4 + value 64 + 32 = 100 */
    char h2[512] = "0004 782d6162 40";
    for (int i = 0; i < 64; i++)
        strcat(h2, "76");
    CHECK_INT(dec_hex(d, h2, &c), 0);
    CHECK_INT(c.n, 1);
    char h3[512] = "0004 782d6162 41";
    for (int i = 0; i < 65; i++)
        strcat(h3, "76");
    CHECK_INT(dec_hex(d, h3, &c), SLUICE_ERR_HEADER_LIST_TOO_LARGE);
    CHECK_INT(c.n, 0);
    /* still in sync: a normal block decodes */
    CHECK_INT(dec_hex(d, "82", &c), 0);
    CHECK_STR(c.text, ":method: GET\n");
    sluice_hpack_decoder_free(d);
}

/* An HPACK bomb: one 4 KiB-ish entry referenced over and over. The limit
 * stops the list long before its decoded size explodes. */
TEST(header_list_limit_stops_bomb)
{
    sluice_hpack_decoder *d = dec_new(4096, 65536);
    static uint8_t blk[8192];
    size_t n = 0;
    blk[n++] = 0x40;
    blk[n++] = 0x01;
    blk[n++] = 'x';
    blk[n++] = 0x7f; /* value length 4000 = 127 + 3873 */
    blk[n++] = (uint8_t)(0x80 | (3873 & 0x7f));
    blk[n++] = (uint8_t)(3873 >> 7);
    memset(blk + n, 'b', 4000);
    n += 4000;
    for (int i = 0; i < 2000; i++)
        blk[n++] = 0xbe;
    cap c;
    CHECK_INT(dec_bytes(d, blk, n, &c), SLUICE_ERR_HEADER_LIST_TOO_LARGE);
    /* 65536 / 4033 = 16 fields fit */
    CHECK_INT(c.n, 16);
    sluice_hpack_decoder_free(d);
}

TEST(emit_error_aborts)
{
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    uint8_t buf[64];
    size_t n = unhex(c3_hex[0], buf, sizeof(buf));
    cap_reset(&c);
    c.fail_at = 2;
    c.fail_rc = -1000;
    CHECK_INT(sluice_hpack_decode(d, buf, n, cap_emit, &c), -1000);
    CHECK_INT(c.n, 2); /* no call after the failing one */
    sluice_hpack_decoder_free(d);

    d = dec_new(4096, 0);
    cap_reset(&c);
    c.fail_at = 1;
    c.fail_rc = SLUICE_ERR_CALM;
    CHECK_INT(sluice_hpack_decode(d, buf, n, cap_emit, &c), SLUICE_ERR_CALM);
    CHECK_INT(c.n, 1);
    sluice_hpack_decoder_free(d);
}

/* ---- encoder: table size updates (§4.2, §6.3) ------------------------------ */

TEST(enc_size_update_zero)
{
    sluice_hpack_encoder *e = enc_new(4096, 0);
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 0), 0);
    sluice_nv nv[] = { NV(":method", "GET"), NV("custom-key", "custom-value") };
    uint8_t out[256];
    size_t len = 0;
    CHECK_INT(enc(e, nv, NELEM(nv), out, sizeof(out), &len), 0);
    CHECK(len >= 2);
    CHECK_INT(out[0], 0x20);
    CHECK_INT(out[1], 0x82);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 0);
    /* a decoder with a 0-byte table follows it */
    sluice_hpack_decoder *d = dec_new(4096, 0);
    CHECK_INT(sluice_hpack_decoder_set_max_table_size(d, 0), 0);
    cap c;
    CHECK_INT(dec_bytes(d, out, len, &c), 0);
    CHECK_STR(c.text, ":method: GET\ncustom-key: custom-value\n");
    CHECK_INT(sluice_hpack_decoder_table_size(d), 0);
    /* the update is sent once */
    CHECK_INT(enc(e, nv, NELEM(nv), out, sizeof(out), &len), 0);
    CHECK(len >= 1);
    CHECK_INT(out[0], 0x82);
    CHECK_INT(dec_bytes(d, out, len, &c), 0);
    CHECK_STR(c.text, ":method: GET\ncustom-key: custom-value\n");
    sluice_hpack_encoder_free(e);
    sluice_hpack_decoder_free(d);
}

TEST(enc_size_update_down_then_up)
{
    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv nv[] = { NV(":method", "GET") };
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 100), 0);
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 4096), 0);
    /* the smallest (100) then the final size (4096) */
    CHECK_ENC(e, nv, "3f45 3fe11f 82");
    CHECK_ENC(e, nv, "82");
    sluice_hpack_encoder_free(e);

    /* going down twice needs only the final size */
    e = enc_new(4096, 0);
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 1000), 0);
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 500), 0);
    CHECK_ENC(e, nv, "3fd503 82");
    sluice_hpack_encoder_free(e);

    /* down, up, down again: the smallest was 0, the final 256 */
    e = enc_new(4096, 0);
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 0), 0);
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 8192), 0);
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 256), 0);
    CHECK_ENC(e, nv, "20 3fe101 82");
    sluice_hpack_encoder_free(e);
}

/* A peer setting above our own max_table_size is capped by it. */
TEST(enc_size_capped_by_option)
{
    sluice_hpack_encoder *e = enc_new(1024, 0);
    sluice_nv nv[] = { NV(":method", "GET") };
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 512), 0);
    CHECK_ENC(e, nv, "3fe103 82"); /* 512 */
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 65536), 0);
    CHECK_ENC(e, nv, "3fe107 82"); /* back up, but only to 1024 */
    sluice_hpack_encoder_free(e);
}

/* The table shrinks at once, evicting the oldest entries. */
TEST(enc_size_update_evicts)
{
    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv a[] = { NV("custom-key", "custom-header") }; /* 55 */
    sluice_nv b[] = { NV("custom-kez", "custom-header") }; /* 55 */
    CHECK_ENC(e, a, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    CHECK_ENC(e, b, "400a 6375 7374 6f6d 2d6b 657a 0d63 7573 746f 6d2d 6865 6164 6572");
    CHECK_INT(sluice_hpack_encoder_table_size(e), 110);
    /* the table may shrink now or when the update goes out; either way
     * it has by the end of the next block */
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(e, 60), 0);
    /* b is still at 62; a is gone, so it is a literal again */
    sluice_nv ab[] = { NV("custom-kez", "custom-header"),
                       NV("custom-key", "custom-header") };
    uint8_t out[256];
    size_t len = 0;
    CHECK_INT(enc(e, ab, 2, out, sizeof(out), &len), 0);
    CHECK(len >= 3);
    CHECK_INT(out[0], 0x3f);
    CHECK_INT(out[1], 0x1d); /* 60 */
    CHECK_INT(out[2], 0xbe);
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"
                         "400a 6375 7374 6f6d 2d6b 657a 0d63 7573 746f 6d2d 6865 6164 6572",
                      &c), 0);
    CHECK_INT(dec_bytes(d, out, len, &c), 0);
    CHECK_STR(c.text, "custom-kez: custom-header\ncustom-key: custom-header\n");
    CHECK_INT(sluice_hpack_encoder_table_size(e), 55);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 55);
    sluice_hpack_encoder_free(e);
    sluice_hpack_decoder_free(d);
}

/* ---- encoder: buffer bound -------------------------------------------------- */

TEST(enc_nobuf_leaves_encoder_unchanged)
{
    sluice_hpack_encoder *a = enc_new(4096, 1), *b = enc_new(4096, 1);
    CHECK(a && b);
    /* a pending size update must survive the failed call too */
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(a, 1024), 0);
    CHECK_INT(sluice_hpack_encoder_set_max_table_size(b, 1024), 0);
    sluice_nv nv[HC_MAX_FIELDS];
    const hc_list *l = &hc_requests[0];
    hc_to_nv(l, nv);
    size_t bound = sluice_hpack_encode_bound(a, nv, l->n);
    CHECK(bound > 0);
    static uint8_t oa[8192], ob[8192];
    CHECK(bound <= sizeof(oa));
    size_t la = 12345, lb = 0;
    memset(oa, 0xee, sizeof(oa));
    CHECK_INT(sluice_hpack_encode(a, nv, l->n, oa, bound - 1, &la), SLUICE_ERR_NOBUF);
    CHECK_INT(sluice_hpack_encode(a, nv, l->n, oa, 0, &la), SLUICE_ERR_NOBUF);
    CHECK_INT(sluice_hpack_encoder_table_size(a), 0);
    /* "nothing written" */
    for (size_t i = 0; i < sizeof(oa); i++)
        CHECK_INT(oa[i], 0xee);
    CHECK_INT(sluice_hpack_encode(a, nv, l->n, oa, bound, &la), 0);
    CHECK_INT(sluice_hpack_encode(b, nv, l->n, ob, sizeof(ob), &lb), 0);
    CHECK_MEM(oa, la, ob, lb);
    CHECK(la <= bound);
    CHECK_INT(oa[0], 0x3f); /* the update to 1024 */
    CHECK_INT(oa[1], 0xe1);
    CHECK_INT(oa[2], 0x07);
    CHECK_INT(sluice_hpack_encoder_table_size(a), sluice_hpack_encoder_table_size(b));

    /* and once the table has entries: fail, then continue identically */
    l = &hc_requests[1];
    hc_to_nv(l, nv);
    bound = sluice_hpack_encode_bound(a, nv, l->n);
    CHECK_INT(sluice_hpack_encode(a, nv, l->n, oa, bound - 1, &la), SLUICE_ERR_NOBUF);
    CHECK_INT(sluice_hpack_encode(a, nv, l->n, oa, bound, &la), 0);
    CHECK_INT(sluice_hpack_encode(b, nv, l->n, ob, sizeof(ob), &lb), 0);
    CHECK_MEM(oa, la, ob, lb);
    sluice_hpack_encoder_free(a);
    sluice_hpack_encoder_free(b);
}

/* The bound holds for the whole corpus at every table size, and every
 * encoder/decoder pair round-trips it exactly. */
static void roundtrip_corpus(const hc_list *lists, size_t nlists,
                             uint32_t table, int huffman)
{
    sluice_hpack_encoder *e = enc_new(table, huffman);
    sluice_hpack_decoder *d = dec_new(table, 0);
    CHECK(e && d);
    static uint8_t out[16384];
    static cap c;
    for (size_t i = 0; i < nlists; i++) {
        sluice_nv nv[HC_MAX_FIELDS];
        CHECK(lists[i].n <= HC_MAX_FIELDS);
        hc_to_nv(&lists[i], nv);
        size_t bound = sluice_hpack_encode_bound(e, nv, lists[i].n);
        CHECK(bound <= sizeof(out));
        size_t len = 0;
        CHECK_INT(sluice_hpack_encode(e, nv, lists[i].n, out, bound, &len), 0);
        CHECK(len <= bound);
        CHECK(sluice_hpack_encoder_table_size(e) <= table);
        CHECK_INT(dec_bytes(d, out, len, &c), 0);
        CHECK_INT(c.n, lists[i].n);
        size_t off = 0;
        for (size_t k = 0; k < lists[i].n; k++) {
            size_t nl = nv[k].name_len, vl = nv[k].value_len;
            CHECK(memcmp(c.text + off, nv[k].name, nl) == 0);
            CHECK(memcmp(c.text + off + nl, ": ", 2) == 0);
            CHECK(memcmp(c.text + off + nl + 2, nv[k].value, vl) == 0);
            CHECK_INT(c.text[off + nl + 2 + vl], '\n');
            off += nl + vl + 3;
            if (nv[k].flags & SLUICE_NV_NEVER_INDEX)
                CHECK_INT(c.flags[k] & SLUICE_NV_NEVER_INDEX, SLUICE_NV_NEVER_INDEX);
        }
        CHECK_INT(off, c.len);
        CHECK_INT(sluice_hpack_decoder_table_size(d), sluice_hpack_encoder_table_size(e));
    }
    sluice_hpack_encoder_free(e);
    sluice_hpack_decoder_free(d);
}

TEST(corpus_roundtrip_and_bound)
{
    static const uint32_t sizes[] = { 0, 64, 256, 4096, 65536 };
    for (size_t s = 0; s < NELEM(sizes); s++) {
        for (int h = 0; h <= 1; h++) {
            int before = t_failed;
            roundtrip_corpus(hc_requests, HC_NREQUESTS, sizes[s], h);
            roundtrip_corpus(hc_responses, HC_NRESPONSES, sizes[s], h);
            if (t_failed != before) {
                fprintf(stderr, "  table %u huffman %d\n", (unsigned)sizes[s], h);
                return;
            }
        }
    }
}

/* The second time a list is sent, everything it indexed is one byte. */
TEST(enc_reuses_dynamic_entries)
{
    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv nv[] = { NV(":method", "GET"), NV(":scheme", "https"),
                       NV(":authority", "example.com"), NV("user-agent", "X") };
    CHECK_ENC(e, nv, "82 87 410b 6578616d706c652e636f6d 7a01 58");
    CHECK_ENC(e, nv, "82 87 bf be");
    sluice_hpack_encoder_free(e);
}

/* ---- encoder: what is indexed and what is not ------------------------------ */

TEST(enc_sensitive_fields_never_indexed)
{
    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv nv[] = {
        NV("authorization", "Basic dXNlcjpwYXNz"),
        NV("cookie", "id=0123456789abcdef"),  /* 19 bytes: never indexed */
        NV("cookie", "id=0123456789abcdefg"), /* 20 bytes: indexed */
        NV("proxy-authorization", "Basic eDp5"),
        NVF("x-secret", "abc", SLUICE_NV_NEVER_INDEX),
    };
    CHECK_ENC(e, nv,
              "1f08 12 42617369632064584e6c636a707759584e7a"
              "1f11 13 69643d30313233343536373839616263646566"
              "60 14 69643d3031323334353637383961626364656667"
              "1f22 0a 42617369632065447035"
              "1008 782d736563726574 03 616263");
    CHECK_INT(sluice_hpack_encoder_table_size(e), 6 + 20 + 32);
    sluice_hpack_decoder *d = dec_new(4096, 0);
    uint8_t out[512];
    size_t len;
    sluice_hpack_encoder_free(e);
    e = enc_new(4096, 1); /* the same rule with Huffman on */
    CHECK_INT(enc(e, nv, NELEM(nv), out, sizeof(out), &len), 0);
    cap c;
    CHECK_INT(dec_bytes(d, out, len, &c), 0);
    CHECK_INT(c.n, 5);
    CHECK_INT(c.flags[0], SLUICE_NV_NEVER_INDEX);
    CHECK_INT(c.flags[1], SLUICE_NV_NEVER_INDEX);
    CHECK_INT(c.flags[2], 0);
    CHECK_INT(c.flags[3], SLUICE_NV_NEVER_INDEX);
    CHECK_INT(c.flags[4], SLUICE_NV_NEVER_INDEX);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 58);
    sluice_hpack_encoder_free(e);
    sluice_hpack_decoder_free(d);
}

/* A field already in the dynamic table but now flagged NEVER_INDEX must
 * still go out as a never-indexed literal, so the next hop keeps the flag
 * (RFC 7541 §6.2.3, §7.1.3). */
TEST(enc_never_index_flag_beats_table_match)
{
    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv plain[] = { NV("x-token", "abc") };
    sluice_nv secret[] = { NVF("x-token", "abc", SLUICE_NV_NEVER_INDEX) };
    CHECK_ENC(e, plain, "4007 782d746f6b656e 03 616263");
    uint8_t out[64];
    size_t len = 0;
    CHECK_INT(enc(e, secret, 1, out, sizeof(out), &len), 0);
    CHECK(len >= 1);
    CHECK_INT(out[0] & 0xf0, 0x10);
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_hex(d, "4007 782d746f6b656e 03 616263", &c), 0);
    CHECK_INT(dec_bytes(d, out, len, &c), 0);
    CHECK_STR(c.text, "x-token: abc\n");
    CHECK_INT(c.flags[0], SLUICE_NV_NEVER_INDEX);
    sluice_hpack_encoder_free(e);
    sluice_hpack_decoder_free(d);
}

TEST(enc_per_message_values_not_indexed)
{
    sluice_hpack_encoder *e = enc_new(4096, 0);
    sluice_nv nv[] = {
        NV(":path", "/a?b=c"),
        NV("content-length", "1234"), NV("etag", "\"x\""),
        NV("last-modified", "Thu, 14 Mar 2024 10:33:19 GMT"), NV("age", "5"),
        NV("expires", "0"), NV("location", "/x"), NV("set-cookie", "a=b"),
        NV("if-modified-since", "Thu, 14 Mar 2024 10:33:19 GMT"),
        NV("if-none-match", "\"x\""), NV("content-range", "bytes 0-1/2"),
    };
    uint8_t out[1024];
    size_t len = 0;
    CHECK_INT(enc(e, nv, NELEM(nv), out, sizeof(out), &len), 0);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 0);
    /* every representation is "without indexing" (0000xxxx): the first one */
    CHECK_INT(out[0], 0x04); /* :path, name 4 */
    sluice_hpack_decoder *d = dec_new(4096, 0);
    cap c;
    CHECK_INT(dec_bytes(d, out, len, &c), 0);
    CHECK_INT(c.n, (int)NELEM(nv));
    for (int i = 0; i < c.n; i++)
        CHECK_INT(c.flags[i], 0);
    CHECK_INT(sluice_hpack_decoder_table_size(d), 0);
    sluice_hpack_encoder_free(e);
    sluice_hpack_decoder_free(d);
}

TEST(enc_long_value_not_indexed)
{
    static char big[3200];
    memset(big, 'v', sizeof(big));
    /* 5 + 3100 + 32 is over 3/4 of 4096: sent without indexing */
    sluice_nv nv[] = { { (const uint8_t *)"x-big", (const uint8_t *)big, 5, 3100, 0 } };
    sluice_hpack_encoder *e = enc_new(4096, 0);
    static uint8_t out[4096];
    size_t len = 0;
    CHECK_INT(enc(e, nv, 1, out, sizeof(out), &len), 0);
    CHECK_INT(out[0], 0x00); /* literal without indexing, new name */
    CHECK_INT(len, 1 + 1 + 5 + 3 + 3100); /* 3100 = 7f 9d 17 */
    CHECK_INT(out[7], 0x7f);
    CHECK_INT(out[8], 0x9d);
    CHECK_INT(out[9], 0x17);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 0);
    sluice_hpack_encoder_free(e);

    /* a long cookie-like value under that is indexed */
    e = enc_new(4096, 0);
    nv[0].value_len = 1024;
    CHECK_INT(enc(e, nv, 1, out, sizeof(out), &len), 0);
    CHECK_INT(out[0], 0x40);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 5 + 1024 + 32);
    sluice_hpack_encoder_free(e);

    /* max_indexed_value_len: with 256, 256 is indexed and 257 is not */
    sluice_hpack_options o;
    sluice_hpack_options_init(&o);
    o.huffman = 0;
    o.max_indexed_value_len = 256;
    CHECK_INT(sluice_hpack_encoder_new(&e, &o, NULL), 0);
    nv[0].value_len = 256;
    CHECK_INT(enc(e, nv, 1, out, sizeof(out), &len), 0);
    CHECK_INT(out[0], 0x40);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 5 + 256 + 32);
    nv[0].value_len = 257;
    CHECK_INT(enc(e, nv, 1, out, sizeof(out), &len), 0);
    CHECK_INT(out[0] & 0xf0, 0x00); /* without indexing (name: any form) */
    CHECK_INT(sluice_hpack_encoder_table_size(e), 5 + 256 + 32);
    sluice_hpack_encoder_free(e);

    /* more than 3/4 of a small table: 3 + 200 + 32 > 192 */
    e = enc_new(256, 0);
    sluice_nv nv2[] = { { (const uint8_t *)"x-v", (const uint8_t *)big, 3, 200, 0 } };
    CHECK_INT(enc(e, nv2, 1, out, sizeof(out), &len), 0);
    CHECK_INT(out[0], 0x3f); /* announcing 256 */
    CHECK_INT(out[1], 0xe1);
    CHECK_INT(out[2], 0x01);
    CHECK_INT(out[3], 0x00);
    CHECK_INT(sluice_hpack_encoder_table_size(e), 0);
    sluice_hpack_encoder_free(e);
}

/* ---- memory ------------------------------------------------------------------ */

typedef struct counting {
    long live, total;
    long fail_from; /* refuse the allocation of this number and later; -1 never */
    int refused;
} counting;

static void *cnt_malloc(size_t n, void *ud)
{
    counting *c = ud;
    if (c->fail_from >= 0 && c->total >= c->fail_from) {
        c->refused = 1;
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (p) {
        c->live++;
        c->total++;
    }
    return p;
}

static void *cnt_realloc(void *p, size_t n, void *ud)
{
    counting *c = ud;
    if (!p)
        return cnt_malloc(n, ud);
    if (c->fail_from >= 0 && c->total >= c->fail_from) {
        c->refused = 1;
        return NULL;
    }
    c->total++;
    return realloc(p, n ? n : 1);
}

static void cnt_free(void *p, void *ud)
{
    counting *c = ud;
    if (p) {
        c->live--;
        free(p);
    }
}

/* Encode and decode a few corpus lists with allocator a; every result must
 * be success or NOMEM. */
static int churn(const sluice_allocator *a)
{
    sluice_hpack_encoder *e = NULL;
    sluice_hpack_decoder *d = NULL;
    int rc = sluice_hpack_encoder_new(&e, NULL, a);
    if (rc != 0) {
        if (e)
            return -9998; /* out must stay untouched on failure */
        return rc;
    }
    rc = sluice_hpack_decoder_new(&d, NULL, a);
    if (rc != 0) {
        sluice_hpack_encoder_free(e);
        return d ? -9998 : rc;
    }
    static uint8_t out[16384];
    static cap c;
    for (size_t i = 0; i < 6 && rc == 0; i++) {
        sluice_nv nv[HC_MAX_FIELDS];
        hc_to_nv(&hc_requests[i], nv);
        size_t len = 0;
        rc = sluice_hpack_encode(e, nv, hc_requests[i].n, out, sizeof(out), &len);
        if (rc == 0)
            rc = dec_bytes(d, out, len, &c);
        if (rc == 0 && c.n != (int)hc_requests[i].n)
            rc = -9997;
    }
    sluice_hpack_encoder_free(e);
    sluice_hpack_decoder_free(d);
    return rc;
}

TEST(custom_allocator_all_freed)
{
    counting cn = { 0, 0, -1, 0 };
    sluice_allocator a = { cnt_malloc, cnt_realloc, cnt_free, &cn };
    CHECK_INT(churn(&a), 0);
    CHECK(cn.total > 0);   /* it really allocated through us */
    CHECK_INT(cn.live, 0); /* and gave everything back */
}

TEST(allocation_failures_are_clean)
{
    int saw_nomem = 0;
    for (long k = 0; k < 500; k++) {
        counting cn = { 0, 0, k, 0 };
        sluice_allocator a = { cnt_malloc, cnt_realloc, cnt_free, &cn };
        int rc = churn(&a);
        CHECK_INT(cn.live, 0);
        if (!cn.refused) {
            CHECK_INT(rc, 0);
            CHECK(saw_nomem);
            return;
        }
        /* a refused allocation may be absorbed (e.g. an optional cache),
         * but the only error it may cause is NOMEM */
        if (rc != 0) {
            CHECK_INT(rc, SLUICE_ERR_NOMEM);
            saw_nomem = 1;
        }
    }
    T_FAIL("more than 500 allocations for six header lists");
}
