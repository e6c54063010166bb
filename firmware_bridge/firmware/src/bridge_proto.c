#include "bridge_proto.h"

#include <string.h>

uint16_t br_crc16(const uint8_t *data, size_t n, uint16_t crc)
{
    size_t i;
    int bit;
    for (i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8; bit++) {
            if (crc & 0x8000u) {
                crc = (uint16_t)((uint16_t)(crc << 1) ^ 0x1021u);
            } else {
                crc = (uint16_t)(crc << 1);
            }
        }
    }
    return crc;
}

size_t br_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t code_at = 0, o = 1, i;
    uint8_t code = 1;
    if (cap == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            if (o > cap) {
                return 0;
            }
            continue;
        }
        if (o >= cap) {
            return 0;
        }
        out[o++] = in[i];
        code++;
        if (code == 0xFF && i + 1 < n) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            if (o > cap) {
                return 0;
            }
        }
    }
    out[code_at] = code;
    return o;
}

int br_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t i = 0, o = 0, j;
    while (i < n) {
        uint8_t code = in[i];
        if (code == 0 || (size_t)code > n - i) {
            return -1;
        }
        for (j = 1; j < code; j++) {
            if (in[i + j] == 0 || o >= cap) {
                return -1;
            }
            out[o++] = in[i + j];
        }
        i += code;
        if (code != 0xFF && i < n) {
            if (o >= cap) {
                return -1;
            }
            out[o++] = 0;
        }
    }
    *out_len = o;
    return 0;
}

size_t br_frame_encode(uint8_t type, uint16_t seq, const uint8_t *body, size_t len, uint8_t *out,
                       size_t cap)
{
    uint8_t payload[BR_MAX_PAYLOAD];
    size_t n, enc;
    uint16_t crc;
    if (len > BR_MAX_BODY || cap < 3 || (len > 0 && body == NULL)) {
        return 0;
    }
    payload[0] = BR_VERSION;
    payload[1] = type;
    br_put_u16(payload + 2, seq);
    br_put_u16(payload + 4, (uint16_t)len);
    if (len > 0) {
        memcpy(payload + BR_HEADER_SIZE, body, len);
    }
    n = BR_HEADER_SIZE + len;
    crc = br_crc16(payload, n, BR_CRC16_INIT);
    br_put_u16(payload + n, crc);
    n += BR_CRC_SIZE;
    out[0] = 0;
    enc = br_cobs_encode(payload, n, out + 1, cap - 2);
    if (enc == 0) {
        return 0;
    }
    out[1 + enc] = 0;
    return enc + 2;
}

br_status br_frame_decode_chunk(const uint8_t *chunk, size_t n, br_frame *out)
{
    uint8_t payload[BR_MAX_PAYLOAD];
    size_t len = 0, body_len;
    if (n > BR_MAX_ENCODED) {
        return BR_ERR_OVERSIZE;
    }
    if (br_cobs_decode(chunk, n, payload, sizeof payload, &len) != 0) {
        return BR_ERR_COBS;
    }
    if (len < BR_HEADER_SIZE + BR_CRC_SIZE) {
        return BR_ERR_SHORT;
    }
    body_len = len - BR_HEADER_SIZE - BR_CRC_SIZE;
    if (br_crc16(payload, len - BR_CRC_SIZE, BR_CRC16_INIT) != br_get_u16(payload + len - 2)) {
        return BR_ERR_CRC;
    }
    if (payload[0] != BR_VERSION) {
        return BR_ERR_VERSION;
    }
    if (br_get_u16(payload + 4) != body_len) {
        return BR_ERR_LENGTH;
    }
    out->version = payload[0];
    out->type = payload[1];
    out->seq = br_get_u16(payload + 2);
    out->len = (uint16_t)body_len;
    if (body_len > 0) {
        memcpy(out->body, payload + BR_HEADER_SIZE, body_len);
    }
    return BR_OK;
}

void br_decoder_init(br_decoder *d)
{
    d->len = 0;
    d->discarding = 0;
}

int br_decoder_push(br_decoder *d, uint8_t byte, br_frame *out, br_status *status)
{
    br_status st;
    if (byte != 0) {
        if (d->discarding) {
            return 0;
        }
        if (d->len >= sizeof d->buf) {
            d->len = 0;
            d->discarding = 1; /* resync: drop everything up to the next delimiter */
            *status = BR_ERR_OVERSIZE;
            return -1;
        }
        d->buf[d->len++] = byte;
        return 0;
    }
    if (d->discarding) {
        d->discarding = 0;
        return 0;
    }
    if (d->len == 0) {
        return 0; /* empty chunk between two delimiters */
    }
    st = br_frame_decode_chunk(d->buf, d->len, out);
    d->len = 0;
    if (st != BR_OK) {
        *status = st;
        return -1;
    }
    return 1;
}

uint16_t br_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t br_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void br_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

void br_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}
