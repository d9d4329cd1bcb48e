/* huffman.h — the static Huffman code of HPACK (RFC 7541 §5.2, Appendix B).
 * Encoding by table lookup; decoding by a 4-bit-at-a-time state table. */
#ifndef SL_HUFFMAN_H
#define SL_HUFFMAN_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to Huffman-code src[0..len). */
size_t sl_huffman_encoded_len(const uint8_t *src, size_t len);

/* Huffman-code src into out, which must hold sl_huffman_encoded_len()
 * bytes; pads the last byte with the EOS prefix (1 bits). Returns the bytes
 * written. */
size_t sl_huffman_encode(uint8_t *out, const uint8_t *src, size_t len);

/* Decode src into out (which must hold at least len * 8 / 5 bytes: the
 * shortest code is 5 bits). Returns the decoded length, or
 * SLUICE_ERR_HPACK_HUFFMAN for an EOS symbol in the string, padding longer
 * than 7 bits, or padding that is not a prefix of EOS (all 1 bits). */
long sl_huffman_decode(uint8_t *out, const uint8_t *src, size_t len);

#endif /* SL_HUFFMAN_H */
