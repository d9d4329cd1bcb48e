/* priority.c — the RFC 9218 priority field ("u=1, i") as a structured-field
 * dictionary (RFC 8941 §3.2), and RFC 7540 weights mapped to urgency. */
#include <stddef.h>
#include <stdint.h>

#include "priority.h"
#include "sluice.h"

static int is_lcalpha(uint8_t c)
{
    return c >= 'a' && c <= 'z';
}

static int is_key_char(uint8_t c)
{
    return is_lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
           c == '*';
}

static void skip_ows(const uint8_t *v, size_t len, size_t *i)
{
    while (*i < len && (v[*i] == ' ' || v[*i] == '\t'))
        (*i)++;
}

/* Skip a bare item we do not interpret (string, token, number, byte
 * sequence, boolean); 0, or -1 when it is not one. */
static int skip_bare_item(const uint8_t *v, size_t len, size_t *i)
{
    if (*i >= len)
        return -1;
    uint8_t c = v[*i];
    if (c == '"') {
        for ((*i)++; *i < len; (*i)++) {
            if (v[*i] == '\\') {
                (*i)++;
                continue;
            }
            if (v[*i] == '"') {
                (*i)++;
                return 0;
            }
        }
        return -1;
    }
    if (c == ':') {
        for ((*i)++; *i < len && v[*i] != ':'; (*i)++)
            ;
        if (*i >= len)
            return -1;
        (*i)++;
        return 0;
    }
    if (c == '?') {
        if (*i + 1 >= len || (v[*i + 1] != '0' && v[*i + 1] != '1'))
            return -1;
        *i += 2;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9') || c == '*' || (c >= 'A' && c <= 'Z') ||
        is_lcalpha(c)) {
        for ((*i)++; *i < len; (*i)++) {
            uint8_t d = v[*i];
            if (d == ',' || d == ';' || d == ' ' || d == '\t' || d == ')')
                break;
            if (d < 0x21 || d > 0x7e || d == '"' || d == '(' || d == '=')
                return -1;
        }
        return 0;
    }
    return -1;
}

/* Parameters after an item (";a=1;b"): not used by RFC 9218, skipped. */
static int skip_params(const uint8_t *v, size_t len, size_t *i)
{
    while (*i < len && v[*i] == ';') {
        (*i)++;
        skip_ows(v, len, i);
        if (*i >= len || (!is_lcalpha(v[*i]) && v[*i] != '*'))
            return -1;
        while (*i < len && is_key_char(v[*i]))
            (*i)++;
        if (*i < len && v[*i] == '=') {
            (*i)++;
            if (skip_bare_item(v, len, i) != 0)
                return -1;
        }
    }
    return 0;
}

static int skip_inner_list(const uint8_t *v, size_t len, size_t *i)
{
    (*i)++; /* '(' */
    for (;;) {
        skip_ows(v, len, i);
        if (*i >= len)
            return -1;
        if (v[*i] == ')') {
            (*i)++;
            return skip_params(v, len, i);
        }
        if (skip_bare_item(v, len, i) != 0 || skip_params(v, len, i) != 0)
            return -1;
    }
}

int sluice_priority_parse(const uint8_t *v, size_t len, int *urgency, int *incremental)
{
    if (!v && len)
        return SLUICE_ERR_INVAL;
    int u = urgency ? *urgency : SLUICE_URGENCY_DEFAULT;
    int inc = incremental ? *incremental : 0;
    size_t i = 0;
    skip_ows(v, len, &i);
    while (i < len) {
        /* key */
        if (!is_lcalpha(v[i]) && v[i] != '*')
            return SLUICE_ERR_INVAL;
        size_t k = i;
        while (i < len && is_key_char(v[i]))
            i++;
        size_t klen = i - k;
        int is_u = klen == 1 && v[k] == 'u', is_i = klen == 1 && v[k] == 'i';
        if (i < len && v[i] == '=') {
            i++;
            if (i < len && v[i] == '(') {
                if (skip_inner_list(v, len, &i) != 0)
                    return SLUICE_ERR_INVAL;
            } else {
                size_t at = i;
                if (skip_bare_item(v, len, &i) != 0)
                    return SLUICE_ERR_INVAL;
                size_t end = i;
                if (skip_params(v, len, &i) != 0)
                    return SLUICE_ERR_INVAL;
                /* RFC 9218 §4.1: u is an integer 0..7, anything else is
                 * ignored; §4.2: i is a boolean. */
                if (is_u && end - at == 1 && v[at] >= '0' && v[at] <= '7')
                    u = v[at] - '0';
                if (is_i && end - at == 2 && v[at] == '?')
                    inc = v[at + 1] == '1';
            }
        } else {
            /* A key alone is boolean true. */
            if (skip_params(v, len, &i) != 0)
                return SLUICE_ERR_INVAL;
            if (is_i)
                inc = 1;
        }
        skip_ows(v, len, &i);
        if (i == len)
            break;
        if (v[i] != ',')
            return SLUICE_ERR_INVAL;
        i++;
        skip_ows(v, len, &i);
        if (i == len) /* trailing comma */
            return SLUICE_ERR_INVAL;
    }
    if (urgency)
        *urgency = u;
    if (incremental)
        *incremental = inc;
    return 0;
}

int sl_priority_from_weight(uint16_t weight)
{
    /* RFC 7540 weights 1..256 onto urgency 7..0, so Chrome's 256 (the
     * document) is 0, 220 (CSS) 1, 183 (scripts) 2, 147 3, 110 (images) 4
     * and low weights 7: old clients keep a sensible order. */
    if (weight < 1)
        weight = 1;
    if (weight > 256)
        weight = 256;
    return (256 - weight) / 32;
}
