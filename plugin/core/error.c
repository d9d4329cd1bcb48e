/* error.c — version queries and the text and wire code of every error.
 * The only place that maps sluice_error values to RFC 9113 §7 codes. */
#include "sluice.h"

const char *sluice_version(void)
{
    return SLUICE_VERSION_STRING;
}

unsigned sluice_version_num(void)
{
    return SLUICE_VERSION_NUM;
}

const char *sluice_strerror(int err)
{
    switch (err) {
    case SLUICE_OK: return "success";
    case SLUICE_ERR_NOMEM: return "out of memory";
    case SLUICE_ERR_INVAL: return "invalid argument";
    case SLUICE_ERR_NOBUF: return "output buffer too small";
    case SLUICE_ERR_AGAIN: return "try again later";
    case SLUICE_ERR_STATE: return "not allowed in the current state";
    case SLUICE_ERR_LIMIT: return "local limit reached";
    case SLUICE_ERR_NOT_FOUND: return "not found";
    case SLUICE_ERR_PROTOCOL: return "protocol error";
    case SLUICE_ERR_FRAME_SIZE: return "frame size error";
    case SLUICE_ERR_FLOW_CONTROL: return "flow control error";
    case SLUICE_ERR_STREAM_CLOSED: return "stream closed";
    case SLUICE_ERR_REFUSED: return "stream refused";
    case SLUICE_ERR_CALM: return "peer exceeded an abuse limit";
    case SLUICE_ERR_SETTINGS_TIMEOUT: return "SETTINGS not acknowledged in time";
    case SLUICE_ERR_CANCEL: return "stream cancelled";
    case SLUICE_ERR_INTERNAL: return "internal error";
    case SLUICE_ERR_COMPRESSION: return "HPACK compression error";
    case SLUICE_ERR_HPACK_TRUNCATED: return "HPACK block truncated";
    case SLUICE_ERR_HPACK_INTEGER: return "HPACK integer overflow";
    case SLUICE_ERR_HPACK_INDEX: return "HPACK index out of range";
    case SLUICE_ERR_HPACK_HUFFMAN: return "HPACK invalid Huffman string";
    case SLUICE_ERR_HPACK_TABLE_SIZE: return "HPACK invalid table size update";
    case SLUICE_ERR_HPACK_STRING: return "HPACK string too long";
    case SLUICE_ERR_HEADER_LIST_TOO_LARGE: return "header list too large";
    }
    return "unknown error";
}

uint32_t sluice_error_to_h2(int err)
{
    switch (err) {
    case SLUICE_OK: return SLUICE_H2_NO_ERROR;
    case SLUICE_ERR_PROTOCOL: return SLUICE_H2_PROTOCOL_ERROR;
    case SLUICE_ERR_FRAME_SIZE: return SLUICE_H2_FRAME_SIZE_ERROR;
    case SLUICE_ERR_FLOW_CONTROL: return SLUICE_H2_FLOW_CONTROL_ERROR;
    case SLUICE_ERR_STREAM_CLOSED: return SLUICE_H2_STREAM_CLOSED;
    case SLUICE_ERR_REFUSED: return SLUICE_H2_REFUSED_STREAM;
    case SLUICE_ERR_CALM: return SLUICE_H2_ENHANCE_YOUR_CALM;
    case SLUICE_ERR_SETTINGS_TIMEOUT: return SLUICE_H2_SETTINGS_TIMEOUT;
    case SLUICE_ERR_CANCEL: return SLUICE_H2_CANCEL;
    case SLUICE_ERR_COMPRESSION:
    case SLUICE_ERR_HPACK_TRUNCATED:
    case SLUICE_ERR_HPACK_INTEGER:
    case SLUICE_ERR_HPACK_INDEX:
    case SLUICE_ERR_HPACK_HUFFMAN:
    case SLUICE_ERR_HPACK_TABLE_SIZE:
    case SLUICE_ERR_HPACK_STRING: return SLUICE_H2_COMPRESSION_ERROR;
    }
    return SLUICE_H2_INTERNAL_ERROR;
}

const char *sluice_h2_error_name(uint32_t code)
{
    static const char *const names[] = {
        "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR",
        "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
    };
    if (code < sizeof(names) / sizeof(names[0]))
        return names[code];
    return "UNKNOWN";
}
