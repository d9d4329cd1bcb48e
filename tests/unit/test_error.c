/* test_error.c — version queries and the error-code tables. */
#include "t.h"
#include "sluice.h"

TEST(version_matches_header)
{
    CHECK_STR(sluice_version(), SLUICE_VERSION_STRING);
    CHECK_INT(sluice_version_num(), SLUICE_VERSION_NUM);
}

TEST(error_to_h2_codes)
{
    CHECK_INT(sluice_error_to_h2(SLUICE_ERR_PROTOCOL), SLUICE_H2_PROTOCOL_ERROR);
    CHECK_INT(sluice_error_to_h2(SLUICE_ERR_FRAME_SIZE), SLUICE_H2_FRAME_SIZE_ERROR);
    CHECK_INT(sluice_error_to_h2(SLUICE_ERR_FLOW_CONTROL), SLUICE_H2_FLOW_CONTROL_ERROR);
    CHECK_INT(sluice_error_to_h2(SLUICE_ERR_HPACK_HUFFMAN), SLUICE_H2_COMPRESSION_ERROR);
    CHECK_INT(sluice_error_to_h2(SLUICE_ERR_CALM), SLUICE_H2_ENHANCE_YOUR_CALM);
    CHECK_INT(sluice_error_to_h2(SLUICE_ERR_NOMEM), SLUICE_H2_INTERNAL_ERROR);
}

TEST(strerror_never_null)
{
    for (int e = -100; e <= 0; e++)
        CHECK(sluice_strerror(e) != NULL);
    CHECK_STR(sluice_strerror(SLUICE_ERR_HEADER_LIST_TOO_LARGE), "header list too large");
    CHECK_STR(sluice_h2_error_name(0xb), "ENHANCE_YOUR_CALM");
    CHECK_STR(sluice_h2_error_name(0x99), "UNKNOWN");
}
