/* Fuzz target: arbitrary bytes into the board's receive path and the COBS/frame codecs.
 * Built as a libFuzzer target with clang (-fsanitize=fuzzer), or with -DBR_FUZZ_STANDALONE as a
 * random-input loop under ASan/UBSan (any C99 compiler). Every frame the board sends back must
 * decode as a valid frame. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_core.h"

static uint32_t g_now;
static br_decoder g_out;
static uint8_t g_levels[BR_MAX_PINS];

static void z_send(void *ctx, const uint8_t *d, size_t n)
{
    size_t i;
    br_frame f;
    br_status st;
    (void)ctx;
    for (i = 0; i < n; i++) {
        if (br_decoder_push(&g_out, d[i], &f, &st) < 0) {
            abort(); /* the board emitted a bad frame */
        }
    }
}
static uint32_t z_millis(void *ctx) { (void)ctx; return g_now; }
static void z_write(void *ctx, uint8_t pin, uint8_t v) { (void)ctx; g_levels[pin % BR_MAX_PINS] = v; }
static uint8_t z_read(void *ctx, uint8_t pin) { (void)ctx; return g_levels[pin % BR_MAX_PINS]; }
static void z_sensors(void *ctx, br_sensors *s) { (void)ctx; memset(s, 0x5A, sizeof *s); }
static void z_reset(void *ctx, uint8_t reason) { (void)ctx; (void)reason; }

static const br_hal k_hal = {NULL, z_send, z_millis, z_write, z_read, z_sensors, z_reset};
static const br_board_info k_info = {"fuzz", 1u, 0x00FFu, 0xFF00u, 0x1Fu};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static br_core core;
    uint8_t enc[BR_MAX_ENCODED + 8], dec[BR_MAX_ENCODED + 8];
    size_t i, n, m = 0, chunk = size > 0 ? (size_t)(data[0] % 17u) + 1u : 1u;
    br_frame f;

    /* 1. the board's receive path, fed in chunks, time moving on */
    g_now = 0;
    br_decoder_init(&g_out);
    br_core_init(&core, &k_hal, &k_info, NULL, 0, 0, 1);
    for (i = 0; i < size; i += chunk) {
        n = size - i < chunk ? size - i : chunk;
        br_core_rx(&core, data + i, n);
        g_now += 37;
        br_core_poll(&core);
    }
    /* 2. decoding any chunk never overruns */
    (void)br_frame_decode_chunk(data, size, &f);
    /* 3. COBS round trip of the input as a payload */
    n = size < BR_MAX_PAYLOAD ? size : BR_MAX_PAYLOAD;
    i = br_cobs_encode(data, n, enc, sizeof enc);
    if (i == 0 || memchr(enc, 0, i) != NULL || br_cobs_decode(enc, i, dec, sizeof dec, &m) != 0 ||
        m != n || (n > 0 && memcmp(dec, data, n) != 0)) {
        abort();
    }
    return 0;
}

#ifdef BR_FUZZ_STANDALONE
int main(int argc, char **argv)
{
    unsigned long runs = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000ul, r;
    uint32_t x = 0x12345678u;
    static uint8_t buf[2048];
    for (r = 0; r < runs; r++) {
        size_t len, i;
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        len = x % sizeof buf;
        if (r % 2u == 0u) {
            for (i = 0; i < len; i++) {
                x ^= x << 13; x ^= x >> 17; x ^= x << 5;
                buf[i] = (x & 0x300u) == 0 ? 0 : (uint8_t)(x >> 24); /* many delimiters */
            }
        } else {
            /* valid requests of random types and bodies, some with a flipped bit */
            uint8_t body[12];
            size_t k, w;
            len = 0;
            while (len + BR_MAX_WIRE < sizeof buf && (x % 9u) != 0u) {
                x ^= x << 13; x ^= x >> 17; x ^= x << 5;
                for (k = 0; k < sizeof body; k++) {
                    body[k] = (uint8_t)(x >> (k % 4u * 8u)) ^ (uint8_t)k;
                }
                w = br_frame_encode((uint8_t)(x % 0x40u), (uint16_t)x, body, (x >> 8) % 13u,
                                    buf + len, sizeof buf - len);
                if (w > 2 && (x >> 20) % 5u == 0u) {
                    buf[len + 1 + (x >> 12) % (w - 2)] ^= (uint8_t)(1u << ((x >> 4) % 8u));
                }
                len += w;
            }
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("fuzz: %lu random inputs, no crash\n", runs);
    return 0;
}
#endif
