/* Firmware bridge wire format (PROTOCOL.md): CRC-16/CCITT-FALSE, COBS, frames, stream decoder.
 * Portable C99, no allocation, no platform calls. */
#ifndef BRIDGE_PROTO_H
#define BRIDGE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define BR_VERSION 1u
#define BR_HEADER_SIZE 6u
#define BR_CRC_SIZE 2u
#define BR_MAX_BODY 240u
#define BR_MAX_PAYLOAD (BR_HEADER_SIZE + BR_MAX_BODY + BR_CRC_SIZE) /* 248 */
#define BR_MAX_ENCODED (BR_MAX_PAYLOAD + 1u)                         /* 249 */
#define BR_MAX_WIRE (BR_MAX_ENCODED + 2u)                            /* 251 */

/* Result of checking a chunk; values 1..6 are also the ERROR event codes. */
typedef enum {
    BR_OK = 0,
    BR_ERR_COBS = 1,
    BR_ERR_SHORT = 2,
    BR_ERR_CRC = 3,
    BR_ERR_VERSION = 4,
    BR_ERR_LENGTH = 5,
    BR_ERR_OVERSIZE = 6
} br_status;

typedef struct {
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint16_t len;
    uint8_t body[BR_MAX_BODY];
} br_frame;

uint16_t br_crc16(const uint8_t *data, size_t n, uint16_t crc);
#define BR_CRC16_INIT 0xFFFFu

/* COBS-encode n bytes into out (cap bytes); returns the encoded length, 0 if cap is too small. */
size_t br_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);
/* Decode one COBS block; returns 0 and sets *out_len, or -1 when invalid or cap too small. */
int br_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/* Build a wire frame (00 | COBS(header|body|crc) | 00); returns its length, 0 on error. */
size_t br_frame_encode(uint8_t type, uint16_t seq, const uint8_t *body, size_t len, uint8_t *out,
                       size_t cap);
/* Check one chunk (bytes between two delimiters) in the documented order. */
br_status br_frame_decode_chunk(const uint8_t *chunk, size_t n, br_frame *out);

/* Stream decoder: bounded buffer, resynchronises at every 0x00. */
typedef struct {
    uint8_t buf[BR_MAX_ENCODED];
    size_t len;
    int discarding;
} br_decoder;

void br_decoder_init(br_decoder *d);
/* Push one byte. Returns 1: *out holds a frame; -1: a bad chunk, *status says why; 0: nothing. */
int br_decoder_push(br_decoder *d, uint8_t byte, br_frame *out, br_status *status);

/* Little-endian helpers. */
uint16_t br_get_u16(const uint8_t *p);
uint32_t br_get_u32(const uint8_t *p);
void br_put_u16(uint8_t *p, uint16_t v);
void br_put_u32(uint8_t *p, uint32_t v);

#endif
