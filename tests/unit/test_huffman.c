/* test_huffman.c — the HPACK Huffman codec: RFC 7541 Appendix C vectors,
 * round trips, the §5.2 padding and EOS errors, and a bit-by-bit oracle. */
#include "t.h"

#include "huffman.h"
#include "huffman_table.h"
#include "sluice.h"

/* ---- helpers ------------------------------------------------------------ */

static size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
    size_t n = 0;
    while (*hex) {
        unsigned v;
        if (*hex == ' ') {
            hex++;
            continue;
        }
        if (n >= cap || sscanf(hex, "%2x", &v) != 1)
            abort();
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The bound sl_huffman_decode documents: the shortest code is 5 bits. */
static size_t dec_cap(size_t len)
{
    return len * 8 / 5;
}

/* Exactly n bytes on the heap, so that ASan sees a write one past them
 * (1 byte for n == 0, which nothing may write). */
static uint8_t *alloc_exact(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

/* An oracle independent of the generated automaton: the code tree rebuilt
 * from the code table and walked one bit at a time. kid: > 0 node, < 0
 * leaf -(sym + 1). */
struct ref_tree {
    int kid[256][2];
    int n;
};

static void ref_build(struct ref_tree *t)
{
    memset(t, 0, sizeof(*t));
    t->n = 1;
    for (int sym = 0; sym < 257; sym++) {
        int cur = 0;
        for (int i = sl_huff_bits[sym] - 1; i > 0; i--) {
            int b = (int)(sl_huff_code[sym] >> i) & 1;
            if (t->kid[cur][b] == 0)
                t->kid[cur][b] = t->n++;
            cur = t->kid[cur][b];
        }
        t->kid[cur][sl_huff_code[sym] & 1] = -(sym + 1);
    }
}

static long ref_decode(const struct ref_tree *t, uint8_t *out,
                       const uint8_t *src, size_t len)
{
    int node = 0, depth = 0, ones = 1;
    long n = 0;
    for (size_t i = 0; i < len * 8; i++) {
        int b = (src[i / 8] >> (7 - i % 8)) & 1;
        int k = t->kid[node][b];
        if (k > 0) {
            node = k;
            depth++;
            ones = ones && b;
            continue;
        }
        if (-k - 1 == 256)
            return SLUICE_ERR_HPACK_HUFFMAN; /* EOS */
        out[n++] = (uint8_t)(-k - 1);
        node = depth = 0;
        ones = 1;
    }
    if (depth > 7 || !ones)
        return SLUICE_ERR_HPACK_HUFFMAN;
    return n;
}

/* Encode src into a buffer of exactly encoded_len bytes, check it against
 * want (when given), then decode into exactly dec_cap bytes and check the
 * round trip; both buffers on the heap so ASan sees any overrun. */
static int round_trip(const uint8_t *src, size_t len, const uint8_t *want,
                      size_t want_len)
{
    size_t elen = sl_huffman_encoded_len(src, len);
    uint8_t *enc = alloc_exact(elen), *dec = alloc_exact(dec_cap(elen));
    size_t n = sl_huffman_encode(enc, src, len);
    int ok = n == elen && (!want || (n == want_len && memcmp(enc, want, n) == 0));
    long d = ok ? sl_huffman_decode(dec, enc, n) : -1;
    ok = ok && d == (long)len && memcmp(dec, src, len) == 0;
    if (!ok && want) {
        t_hexdump("encoded", enc, n);
        t_hexdump("want", want, want_len);
    }
    free(enc);
    free(dec);
    return ok;
}

/* Decode hex into an exactly sized heap buffer; the result or error. */
static long decode_hex(const char *hex, uint8_t *out, size_t cap)
{
    uint8_t in[64];
    size_t n = unhex(in, sizeof(in), hex);
    uint8_t *buf = alloc_exact(dec_cap(n));
    long r = sl_huffman_decode(buf, in, n);
    if (r > 0 && (size_t)r <= cap)
        memcpy(out, buf, (size_t)r);
    free(buf);
    return r;
}

/* ---- RFC 7541 Appendix C ------------------------------------------------ */

struct vec {
    const char *text;
    const char *hex;
};

/* C.4: requests with Huffman coding. */
static const struct vec c4[] = {
    {"www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"},
    {"no-cache", "a8eb 1064 9cbf"},
    {"custom-key", "25a8 49e9 5ba9 7d7f"},
    {"custom-value", "25a8 49e9 5bb8 e8b4 bf"},
};

/* C.6: responses with Huffman coding. */
static const struct vec c6[] = {
    {"302", "6402"},
    {"307", "640e ff"},
    {"private", "aec3 771a 4b"},
    {"gzip", "9bd9 ab"},
    {"Mon, 21 Oct 2013 20:13:21 GMT",
     "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"},
    {"Mon, 21 Oct 2013 20:13:22 GMT",
     "d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff"},
    {"https://www.example.com",
     "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"},
    {"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
     "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 "
     "0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"},
};

static int check_encode(const struct vec *v)
{
    uint8_t want[64], got[64];
    size_t wn = unhex(want, sizeof(want), v->hex);
    size_t len = strlen(v->text);
    if (sl_huffman_encoded_len((const uint8_t *)v->text, len) != wn)
        return 0;
    size_t n = sl_huffman_encode(got, (const uint8_t *)v->text, len);
    if (n != wn || memcmp(got, want, n) != 0) {
        fprintf(stderr, "encoding \"%s\"\n", v->text);
        t_hexdump("got", got, n);
        t_hexdump("want", want, wn);
        return 0;
    }
    return 1;
}

static int check_decode(const struct vec *v)
{
    uint8_t got[64];
    long n = decode_hex(v->hex, got, sizeof(got));
    size_t len = strlen(v->text);
    if (n != (long)len || memcmp(got, v->text, len) != 0) {
        fprintf(stderr, "decoding \"%s\" gave %ld\n", v->text, n);
        return 0;
    }
    return 1;
}

TEST(rfc7541_c4_encode)
{
    for (size_t i = 0; i < sizeof(c4) / sizeof(c4[0]); i++)
        CHECK(check_encode(&c4[i]));
}

TEST(rfc7541_c4_decode)
{
    for (size_t i = 0; i < sizeof(c4) / sizeof(c4[0]); i++)
        CHECK(check_decode(&c4[i]));
}

TEST(rfc7541_c6_encode)
{
    for (size_t i = 0; i < sizeof(c6) / sizeof(c6[0]); i++)
        CHECK(check_encode(&c6[i]));
}

TEST(rfc7541_c6_decode)
{
    for (size_t i = 0; i < sizeof(c6) / sizeof(c6[0]); i++)
        CHECK(check_decode(&c6[i]));
}

/* ---- the whole code table ----------------------------------------------- */

/* Octets 0..255 in one string, as encoded by python3-hpack's HuffmanEncoder
 * (an implementation independent of this one). */
static const char all_bytes_hex[] =
    "ffc7fffd8fffffe2fffffe3fffffe4fffffe5fffffe6fffffe7fffffe8ffffea"
    "fffffff3fffffa7fffffabffffffdfffffebfffffecfffffedfffffeefffffef"
    "ffffff0ffffff1ffffff2fffffffbfffffcffffffd3fffffd7fffffdbfffffdf"
    "fffffe3fffffe7fffffebfffffed4fe3f9ffaffcabf1febfafefe7fdfd2cbb00"
    "089969b71d79fb9f7fff20ffbff3ff50ddbd7f061c58f265cd9f469d5af66ddd"
    "bf871e5f9cff7ff7fffc3ff9ffe45fff4719242cb34e6e9d68a6a3d7dac426de"
    "fe3cfaf7fffbfe7ffbffdffffffcfffe6ffff4bfff9ffffa3fffd3ffff53fffd"
    "5ffffb3fffeb7fffdaffffb7ffff73fffeeffffdeffffebffffbfffffd9ffffd"
    "bfffebffffe0ffffeeffffc3ffff8bffff1ffffe4fffee7fffb1ffff97fffd9f"
    "fffcdffff9fffffbffffdafffeeffff4ffffb7fffee7fffe8ffffd3fffdeffff"
    "d5fffeeffffbdffffe1fffdfffff7fffff5ffffecffff07fff87fffe0ffff17f"
    "ffedffff87ffff77fffeffffeaffff8bfffe3ffff93ffff87fffcbffff37ffff"
    "1fffff83ffffe1fffebfffe3ffff3fffff2ffffa3ffffd9fffff17ffffc7ffff"
    "f27ffffdefffffbffffff2fffff8fffffb7fff97fff8fffffe6fffffc1fffff8"
    "7ffffe7fffffc5ffffe5fffe4ffff2fffffd1fffff4ffffffefffffe3fffffc9"
    "fffff97fffb3ffffcffffb7fffcdffff4ffff9ffffd1ffffcffffeaffffaffff"
    "fddffffeffffff4fffff5fffffabffffa7ffffd7fffff9bffffecfffffb7ffff"
    "f3fffffe8fffffd3fffffabfffff5fffffff7ffffecfffffdbfffffbbfffff7f"
    "fffff0fffffbbf";

TEST(all_bytes_in_one_string)
{
    uint8_t src[256], want[600];
    for (int i = 0; i < 256; i++)
        src[i] = (uint8_t)i;
    size_t wn = unhex(want, sizeof(want), all_bytes_hex);
    CHECK_INT(wn, 583);
    CHECK(round_trip(src, sizeof(src), want, wn));
}

/* Single symbols, worked out by hand from Appendix B: the code, then 1s. */
TEST(single_symbols_by_hand)
{
    static const struct vec v[] = {
        {"a", "1f"},          /* 00011 + 111 */
        {"0", "07"},          /* 00000 + 111 */
        {"\n", "ffff fff3"},  /* 30 bits: 28 ones, 00, + 11 */
        {"\\", "fffe 1f"},    /* 19 bits: 1111111111111110000 + 11111 */
        {"&", "f8"},          /* 8 bits, no padding */
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        CHECK(check_encode(&v[i]));
        CHECK(check_decode(&v[i]));
    }
    uint8_t nul = 0x00, ff = 0xff, want[4];
    CHECK(round_trip(&nul, 1, want, unhex(want, 4, "ffc7")));
    CHECK(round_trip(&ff, 1, want, unhex(want, 4, "ffff fbbf")));
}

/* Each octet alone: code then 1-padding, exactly encoded_len bytes. */
TEST(each_byte_alone)
{
    for (int b = 0; b < 256; b++) {
        uint8_t src = (uint8_t)b, want[4];
        unsigned bits = sl_huff_bits[b], pad = (8 - bits % 8) % 8;
        uint64_t v = (uint64_t)sl_huff_code[b] << pad | ((1u << pad) - 1);
        size_t n = (bits + pad) / 8;
        for (size_t i = 0; i < n; i++)
            want[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
        CHECK_INT(sl_huffman_encoded_len(&src, 1), n);
        CHECK(round_trip(&src, 1, want, n));
    }
}

TEST(all_byte_pairs_round_trip)
{
    for (int i = 0; i < 65536; i++) {
        uint8_t src[2] = {(uint8_t)(i >> 8), (uint8_t)i};
        CHECK(round_trip(src, 2, NULL, 0));
    }
}

TEST(random_strings_round_trip)
{
    uint64_t s = 0x9e3779b97f4a7c15u;
    uint8_t src[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = xorshift(&s) % sizeof(src);
        /* A third of the strings use only the 5-bit codes, which fill the
         * decoder's output bound exactly. */
        int short_codes = iter % 3 == 0;
        for (size_t i = 0; i < len; i++) {
            uint64_t r = xorshift(&s);
            src[i] = short_codes ? (uint8_t)"012aceiost"[r % 10] : (uint8_t)r;
        }
        CHECK(round_trip(src, len, NULL, 0));
    }
}

TEST(encoded_len_exact)
{
    CHECK_INT(sl_huffman_encoded_len(NULL, 0), 0);
    CHECK_INT(sl_huffman_encoded_len((const uint8_t *)"0", 1), 1);        /* 5 */
    CHECK_INT(sl_huffman_encoded_len((const uint8_t *)"302", 3), 2);      /* 16 */
    CHECK_INT(sl_huffman_encoded_len((const uint8_t *)"033", 3), 3);      /* 17 */
    CHECK_INT(sl_huffman_encoded_len((const uint8_t *)"\n\n", 2), 8);     /* 60 */
    CHECK_INT(sl_huffman_encoded_len((const uint8_t *)"\n\n\n", 3), 12);  /* 90 */
    uint64_t s = 12345;
    uint8_t src[300];
    for (int iter = 0; iter < 200; iter++) {
        size_t len = xorshift(&s) % sizeof(src);
        uint64_t bits = 0;
        for (size_t i = 0; i < len; i++) {
            src[i] = (uint8_t)xorshift(&s);
            bits += sl_huff_bits[src[i]];
        }
        CHECK_INT(sl_huffman_encoded_len(src, len), (bits + 7) / 8);
    }
}

TEST(empty_string)
{
    uint8_t out[1] = {0xaa};
    CHECK_INT(sl_huffman_encoded_len((const uint8_t *)"", 0), 0);
    CHECK_INT(sl_huffman_encode(out, (const uint8_t *)"", 0), 0);
    CHECK_INT(sl_huffman_decode(out, (const uint8_t *)"", 0), 0);
    CHECK_INT(out[0], 0xaa);
}

/* ---- RFC 7541 §5.2 padding and EOS -------------------------------------- */

TEST(padding_up_to_7_ones_accepted)
{
    uint8_t out[8];
    CHECK_INT(decode_hex("032cff", out, sizeof(out)), 3); /* 17 bits + 7 */
    CHECK_MEM(out, 3, "033", 3);
    CHECK_INT(decode_hex("1f", out, sizeof(out)), 1); /* 5 bits + 3 */
    CHECK_MEM(out, 1, "a", 1);
    CHECK_INT(decode_hex("6402", out, sizeof(out)), 3); /* 16 bits, none */
    CHECK_MEM(out, 3, "302", 3);
    /* Four 5-bit codes and 4 bits of padding fill the len * 8 / 5 bound. */
    CHECK_INT(decode_hex("00000f", out, sizeof(out)), 4);
    CHECK_MEM(out, 4, "0000", 4);
}

TEST(eos_in_string_rejected)
{
    uint8_t out[8];
    /* EOS is 30 one bits. */
    CHECK_INT(decode_hex("ffffffff", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
    /* 'a' then EOS then 5 bits of padding */
    CHECK_INT(decode_hex("1fffffffff", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
    /* EOS then '0' then 5 bits of padding: EOS is bad even mid-string */
    CHECK_INT(decode_hex("fffffffc1f", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
}

TEST(padding_longer_than_7_bits_rejected)
{
    uint8_t out[8];
    CHECK_INT(decode_hex("ff", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
    /* "302" fills two octets exactly; a whole 0xff octet follows */
    CHECK_INT(decode_hex("6402ff", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
    /* 'a' then 11 one bits */
    CHECK_INT(decode_hex("1fff", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
    CHECK_INT(decode_hex("ffffff", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
}

TEST(padding_not_all_ones_rejected)
{
    uint8_t out[8];
    CHECK_INT(decode_hex("1e", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN); /* a + 110 */
    CHECK_INT(decode_hex("1b", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN); /* a + 011 */
    CHECK_INT(decode_hex("00", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN); /* 0 + 000 */
    /* a a + 111110 */
    CHECK_INT(decode_hex("18fe", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
}

TEST(truncated_long_code_rejected)
{
    uint8_t out[8];
    /* the first 16 of the 19 bits of '\\' */
    CHECK_INT(decode_hex("fffe", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
    /* 'a' then the first 11 of the 13 bits of '$' */
    CHECK_INT(decode_hex("1ffe", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
    /* the first 24 of the 26 bits of 0xff */
    CHECK_INT(decode_hex("fffffb", out, sizeof(out)), SLUICE_ERR_HPACK_HUFFMAN);
}

/* ---- the automaton against the bit-by-bit oracle ------------------------ */

static int same_as_ref(const struct ref_tree *t, const uint8_t *src, size_t len)
{
    uint8_t want[32], *got = alloc_exact(dec_cap(len));
    long r = ref_decode(t, want, src, len);
    long g = sl_huffman_decode(got, src, len);
    int ok = g == r && (r < 0 || memcmp(got, want, (size_t)r) == 0);
    if (!ok) {
        t_hexdump("input", src, len);
        fprintf(stderr, "  decode %ld, oracle %ld\n", g, r);
    }
    free(got);
    return ok;
}

TEST(every_short_input_matches_oracle)
{
    struct ref_tree t;
    ref_build(&t);
    CHECK_INT(t.n, 256);
    for (int i = 0; i < 256; i++) {
        uint8_t src[1] = {(uint8_t)i};
        CHECK(same_as_ref(&t, src, 1));
    }
    for (int i = 0; i < 65536; i++) {
        uint8_t src[2] = {(uint8_t)(i >> 8), (uint8_t)i};
        CHECK(same_as_ref(&t, src, 2));
    }
}

/* Random octets are mostly invalid; bias towards 1 bits so that long codes,
 * EOS and padding edges come up often. */
TEST(random_input_matches_oracle)
{
    struct ref_tree t;
    ref_build(&t);
    uint64_t s = 0xdeadbeefcafef00du;
    uint8_t src[16];
    for (int iter = 0; iter < 50000; iter++) {
        size_t len = 1 + xorshift(&s) % sizeof(src);
        for (size_t i = 0; i < len; i++) {
            uint64_t r = xorshift(&s);
            src[i] = (uint8_t)(iter % 2 ? r : r | r >> 8 | r >> 16);
        }
        CHECK(same_as_ref(&t, src, len));
    }
}
