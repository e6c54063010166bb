/* C unit tests of the bridge core. Usage: test_bridge VECTORS_FILE. Prints "N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_core.h"

static int g_failed_checks;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
            g_failed_checks++;                                                          \
        }                                                                               \
    } while (0)

/* ---- fake board: captures what the core sends, decodes it back ------------------------- */

#define MAX_OUT 64
typedef struct {
    uint32_t now;
    uint8_t out_level[BR_MAX_PINS];
    uint8_t in_level[BR_MAX_PINS];
    int resets;
    uint8_t last_reset;
    br_decoder dec;
    br_frame frames[MAX_OUT];
    int n_frames;
    int bad_out;
} fake_board;

static fake_board fb;

static void f_send(void *ctx, const uint8_t *d, size_t n)
{
    fake_board *f = ctx;
    size_t i;
    br_status st;
    for (i = 0; i < n; i++) {
        br_frame fr;
        int r = br_decoder_push(&f->dec, d[i], &fr, &st);
        if (r > 0 && f->n_frames < MAX_OUT) {
            f->frames[f->n_frames++] = fr;
        } else if (r < 0) {
            f->bad_out++;
        }
    }
}
static uint32_t f_millis(void *ctx) { return ((fake_board *)ctx)->now; }
static void f_write(void *ctx, uint8_t pin, uint8_t v) { ((fake_board *)ctx)->out_level[pin] = v; }
static uint8_t f_read(void *ctx, uint8_t pin) { return ((fake_board *)ctx)->in_level[pin]; }
static void f_sensors(void *ctx, br_sensors *s)
{
    (void)ctx;
    s->board_temp_cc = 4150;
    s->accel_temp_cc = -525;
    s->rail_mv = 12000;
    s->rail_ma = 1250;
    s->fan_rpm = 3000;
    s->accel_util_permille = 500;
}
static void f_reset(void *ctx, uint8_t reason)
{
    fake_board *f = ctx;
    f->resets++;
    f->last_reset = reason;
}

static const br_hal k_fake_hal = {&fb, f_send, f_millis, f_write, f_read, f_sensors, f_reset};
static const br_board_info k_fake_info = {"fake", 0x01020304u, 0xFFu, 0xFF00u, 0x0Fu};
static br_core core;

static void setup(void)
{
    memset(&fb, 0, sizeof fb);
    fb.now = 1000;
    br_decoder_init(&fb.dec);
    br_core_init(&core, &k_fake_hal, &k_fake_info, NULL, 0, BR_RESET_POWER_ON, 1);
}

static void send_req(uint8_t type, uint16_t seq, const uint8_t *body, size_t len)
{
    uint8_t wire[BR_MAX_WIRE];
    size_t n = br_frame_encode(type, seq, body, len, wire, sizeof wire);
    CHECK(n > 0);
    br_core_rx(&core, wire, n);
}

static const br_frame *last_frame(void)
{
    return fb.n_frames > 0 ? &fb.frames[fb.n_frames - 1] : NULL;
}

/* ---- helpers for vectors ------------------------------------------------------------------ */

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (strcmp(s, "-") == 0) {
        return 0;
    }
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1) {
            break;
        }
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static const char *k_reasons[] = {"ok", "cobs", "short", "crc", "version", "length", "oversize"};
static const char *g_vectors_path;

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_crc_check_value(void)
{
    CHECK(br_crc16((const uint8_t *)"123456789", 9, BR_CRC16_INIT) == 0x29B1);
}

static void check_cobs(const uint8_t *in, size_t n, const uint8_t *want, size_t wn)
{
    uint8_t enc[300], dec[300];
    size_t len = br_cobs_encode(in, n, enc, sizeof enc), dlen = 0;
    CHECK(len == wn);
    CHECK(memcmp(enc, want, wn) == 0);
    CHECK(br_cobs_decode(enc, len, dec, sizeof dec, &dlen) == 0);
    CHECK(dlen == n);
    CHECK(n == 0 || memcmp(dec, in, n) == 0);
}

static void test_cobs_known_vectors(void)
{
    uint8_t big[255], want[257];
    size_t i;
    check_cobs((const uint8_t *)"", 0, (const uint8_t *)"\x01", 1);
    check_cobs((const uint8_t *)"\x00", 1, (const uint8_t *)"\x01\x01", 2);
    check_cobs((const uint8_t *)"\x00\x00", 2, (const uint8_t *)"\x01\x01\x01", 3);
    check_cobs((const uint8_t *)"\x11\x22\x00\x33", 4, (const uint8_t *)"\x03\x11\x22\x02\x33", 5);
    check_cobs((const uint8_t *)"\x11\x00\x00\x00", 4, (const uint8_t *)"\x02\x11\x01\x01\x01", 5);
    for (i = 0; i < 255; i++) {
        big[i] = (uint8_t)(i + 1);
    }
    want[0] = 0xFF;
    memcpy(want + 1, big, 254);
    check_cobs(big, 254, want, 255);
    want[255] = 0x02;
    want[256] = 0xFF;
    check_cobs(big, 255, want, 257);
}

static void test_cobs_rejects_bad_input(void)
{
    uint8_t out[16];
    size_t n;
    CHECK(br_cobs_decode((const uint8_t *)"\x05\x41", 2, out, sizeof out, &n) != 0);
    CHECK(br_cobs_decode((const uint8_t *)"\x03\x00\x41", 3, out, sizeof out, &n) != 0);
    CHECK(br_cobs_decode((const uint8_t *)"\x00", 1, out, sizeof out, &n) != 0);
    CHECK(br_cobs_decode((const uint8_t *)"\x05\x01\x02\x03\x04", 5, out, 2, &n) != 0);
    CHECK(br_cobs_encode((const uint8_t *)"\x01\x02\x03", 3, out, 3) == 0);
}

static void test_vectors(void)
{
    FILE *f = fopen(g_vectors_path, "r");
    char line[4096], name[64], result[16], type[16], seq[16], body[1024], wire[1200];
    int lines = 0;
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof line, f)) {
        uint8_t w[600], b[300], again[BR_MAX_WIRE];
        size_t wn, bn, i;
        br_decoder d;
        br_frame fr;
        br_status st = BR_OK;
        int got = 0, first = 0;
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        if (sscanf(line, "%63s %15s %15s %15s %1023s %1199s", name, result, type, seq, body,
                   wire) != 6) {
            fprintf(stderr, "vectors: cannot parse line: %s", line);
            g_failed_checks++;
            continue;
        }
        lines++;
        wn = unhex(wire, w, sizeof w);
        bn = unhex(body, b, sizeof b);
        br_decoder_init(&d);
        for (i = 0; i < wn; i++) {
            int r = br_decoder_push(&d, w[i], &fr, &st);
            if (r != 0 && first == 0) {
                first = r;
                got = (r > 0) ? 0 : (int)st;
            }
        }
        if (strcmp(result, "ok") == 0) {
            if (first != 1) {
                fprintf(stderr, "vector %s: not decoded (status %s)\n", name, k_reasons[got]);
                g_failed_checks++;
                continue;
            }
            CHECK(fr.type == (uint8_t)strtoul(type, NULL, 0));
            CHECK(fr.seq == (uint16_t)strtoul(seq, NULL, 0));
            CHECK(fr.len == bn && (bn == 0 || memcmp(fr.body, b, bn) == 0));
            CHECK(br_frame_encode(fr.type, fr.seq, fr.body, fr.len, again, sizeof again) == wn);
            CHECK(memcmp(again, w, wn) == 0);
        } else if (first != -1 || strcmp(k_reasons[got], result) != 0) {
            fprintf(stderr, "vector %s: want %s, got %s\n", name, result,
                    first == -1 ? k_reasons[got] : "a frame or nothing");
            g_failed_checks++;
        }
    }
    fclose(f);
    CHECK(lines >= 20);
}

static void test_decoder_resyncs_after_noise(void)
{
    uint8_t stream[700], wire[BR_MAX_WIRE];
    size_t n = 0, i, wn = br_frame_encode(BR_PING, 9, (const uint8_t *)"hi", 2, wire, sizeof wire);
    br_decoder d;
    br_frame fr;
    br_status st;
    int ok = 0, bad = 0;
    memcpy(stream + n, wire, wn);
    n += wn;
    memcpy(stream + n, "\x13\x37\x42", 3); /* noise between frames */
    n += 3;
    memcpy(stream + n, wire, wn);
    n += wn;
    memset(stream + n, 0x55, 300); /* a long run without delimiter */
    n += 300;
    memcpy(stream + n, wire, wn);
    n += wn;
    br_decoder_init(&d);
    for (i = 0; i < n; i++) {
        int r = br_decoder_push(&d, stream[i], &fr, &st);
        ok += r > 0;
        bad += r < 0;
    }
    CHECK(ok == 3);
    CHECK(bad == 2);
    CHECK(fr.seq == 9 && fr.len == 2);
}

static uint32_t g_rng = 0xC0FFEEu;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

/* Random frames with random bytes between them, some with one flipped bit: every intact frame
 * is delivered, in order, and there is at least one bad chunk per flipped frame. */
static void test_noise_and_bit_flips_deliver_every_good_frame(void)
{
    static uint8_t stream[16 * (BR_MAX_WIRE + 40) + 1];
    uint16_t want[16];
    int round;
    for (round = 0; round < 300; round++) {
        size_t n = 0, i;
        int frames = 1 + (int)(rnd() % 16u), k, n_want = 0, flipped = 0, got = 0, bad = 0;
        int order_ok = 1;
        br_decoder d;
        br_frame fr;
        br_status st;
        for (k = 0; k < frames; k++) {
            uint8_t body[BR_MAX_BODY];
            size_t len = rnd() % (BR_MAX_BODY + 1u), j, w, noise = rnd() % 40u;
            uint16_t seq = (uint16_t)(round * 16 + k);
            for (j = 0; j < len; j++) {
                body[j] = (uint8_t)rnd();
            }
            w = br_frame_encode((uint8_t)rnd(), seq, body, len, stream + n, BR_MAX_WIRE);
            CHECK(w > 0);
            if (rnd() % 3u == 0u) {
                uint32_t bit = rnd() % (uint32_t)((w - 2) * 8);
                stream[n + 1 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
                flipped++;
            } else {
                want[n_want++] = seq;
            }
            n += w;
            for (j = 0; j < noise; j++) {
                stream[n++] = (uint8_t)rnd();
            }
        }
        stream[n++] = 0; /* the next frame's leading delimiter ends the last noise run */
        br_decoder_init(&d);
        for (i = 0; i < n; i++) {
            int r = br_decoder_push(&d, stream[i], &fr, &st);
            if (r > 0) {
                if (got >= n_want || fr.seq != want[got]) {
                    order_ok = 0;
                }
                got++;
            } else if (r < 0) {
                bad++;
            }
        }
        CHECK(order_ok);
        CHECK(got == n_want);
        CHECK(bad >= flipped);
        if (!order_ok || got != n_want || bad < flipped) {
            fprintf(stderr, "round %d: %d frames, %d flipped, got %d of %d\n", round, frames,
                    flipped, got, n_want);
            return;
        }
    }
}

static void test_boot_event_and_hello(void)
{
    const br_frame *f;
    setup();
    CHECK(fb.n_frames == 1 && fb.frames[0].type == BR_BOOT && fb.frames[0].seq == 1);
    send_req(BR_HELLO, 77, NULL, 0);
    f = last_frame();
    CHECK(f && f->type == (BR_HELLO | BR_RESPONSE) && f->seq == 77);
    CHECK(f && f->len == 26 + 4 && memcmp(f->body + 26, "fake", 4) == 0);
    CHECK(f && br_get_u32(f->body + 4) == 0x01020304u && f->body[12] == BR_RESET_POWER_ON);
}

static void test_ping_echoes_and_unknown_type_nacks(void)
{
    const br_frame *f;
    setup();
    send_req(BR_PING, 5, (const uint8_t *)"\x00\x01\x00", 3);
    f = last_frame();
    CHECK(f && f->type == (BR_PING | BR_RESPONSE) && f->len == 3 && f->body[1] == 1);
    send_req(0x2F, 6, NULL, 0);
    f = last_frame();
    CHECK(f && f->type == BR_NACK && f->seq == 6 && f->body[0] == 0x2F);
    CHECK(f && f->body[1] == BR_NACK_UNKNOWN_TYPE);
    send_req(BR_SIM_INPUT, 7, (const uint8_t *)"\x08\x01", 2); /* no simulator table here */
    f = last_frame();
    CHECK(f && f->type == BR_NACK && f->body[1] == BR_NACK_UNKNOWN_TYPE);
    send_req(BR_GPIO_GET, 8, NULL, 0);
    f = last_frame();
    CHECK(f && f->type == BR_NACK && f->body[1] == BR_NACK_BAD_LENGTH);
}

static void test_telemetry(void)
{
    const br_frame *f;
    setup();
    fb.now += 2500;
    send_req(BR_TELEMETRY_GET, 3, NULL, 0);
    f = last_frame();
    CHECK(f && f->type == (BR_TELEMETRY_GET | BR_RESPONSE) && f->len == 40);
    CHECK(f && br_get_u32(f->body) == 2500);
    CHECK(f && (int16_t)br_get_u16(f->body + 6) == -525);
    CHECK(f && br_get_u16(f->body + 8) == 12000 && br_get_u16(f->body + 10) == 1250);
    CHECK(f && br_get_u32(f->body + 32) == 1); /* rx_ok counts this request */
}

static void test_gpio_set_with_hold(void)
{
    uint8_t body[6] = {3, 1, 0, 0, 0, 0};
    const br_frame *f;
    setup();
    br_put_u32(body + 2, 500);
    send_req(BR_GPIO_SET, 10, body, 6);
    f = last_frame();
    CHECK(f && f->type == BR_ACK && f->seq == 10 && f->body[0] == BR_GPIO_SET);
    CHECK(fb.out_level[3] == 1);
    fb.now += 499;
    br_core_poll(&core);
    CHECK(fb.out_level[3] == 1);
    fb.now += 1;
    br_core_poll(&core);
    CHECK(fb.out_level[3] == 0);
    body[0] = 9; /* an input pin */
    send_req(BR_GPIO_SET, 11, body, 6);
    f = last_frame();
    CHECK(f && f->type == BR_NACK && f->body[1] == BR_NACK_BAD_ARG);
    body[0] = 200; /* out of range */
    send_req(BR_GPIO_SET, 12, body, 6);
    f = last_frame();
    CHECK(f && f->type == BR_NACK && f->body[1] == BR_NACK_BAD_ARG);
}

static void test_watchdog_resets_when_not_kicked(void)
{
    uint8_t body[4];
    const br_frame *f;
    setup();
    send_req(BR_WDT_KICK, 1, NULL, 0);
    f = last_frame();
    CHECK(f && f->type == BR_NACK && f->body[1] == BR_NACK_STATE);
    br_put_u32(body, 50); /* below the minimum */
    send_req(BR_WDT_CONFIG, 2, body, 4);
    CHECK(last_frame()->type == BR_NACK);
    br_put_u32(body, 1000);
    send_req(BR_WDT_CONFIG, 3, body, 4);
    CHECK(last_frame()->type == BR_ACK);
    fb.now += 900;
    br_core_poll(&core);
    send_req(BR_WDT_KICK, 4, NULL, 0);
    CHECK(last_frame()->type == BR_ACK);
    fb.now += 999;
    br_core_poll(&core);
    CHECK(fb.resets == 0);
    fb.now += 1;
    br_core_poll(&core);
    CHECK(fb.resets == 1 && fb.last_reset == BR_RESET_WATCHDOG);
    br_core_init(&core, &k_fake_hal, &k_fake_info, NULL, 0, fb.last_reset, 2);
    f = last_frame();
    CHECK(f && f->type == BR_BOOT && f->body[0] == BR_RESET_WATCHDOG && br_get_u16(f->body + 1) == 2);
    send_req(BR_RESET_REASON_GET, 5, NULL, 0);
    f = last_frame();
    CHECK(f && f->type == (BR_RESET_REASON_GET | BR_RESPONSE) && f->body[0] == BR_RESET_WATCHDOG);
}

static void test_software_reset_after_ack(void)
{
    setup();
    send_req(BR_RESET, 1, NULL, 0);
    CHECK(last_frame()->type == BR_ACK && fb.resets == 0);
    br_core_poll(&core);
    CHECK(fb.resets == 1 && fb.last_reset == BR_RESET_SOFTWARE);
}

static void test_input_events_and_trigger_debounce(void)
{
    const br_frame *f;
    int before;
    setup();
    send_req(BR_TRIGGER_CONFIG, 1, (const uint8_t *)"\x08\x01\x64\x00", 4); /* pin 8 rising 100 ms */
    CHECK(last_frame()->type == BR_ACK);
    send_req(BR_TRIGGER_CONFIG, 2, (const uint8_t *)"\x02\x01\x00\x00", 4); /* an output */
    CHECK(last_frame()->type == BR_NACK);
    fb.in_level[8] = 1;
    br_core_poll(&core);
    CHECK(fb.n_frames >= 2);
    f = &fb.frames[fb.n_frames - 2];
    CHECK(f->type == BR_GPIO_EVENT && f->body[0] == 8 && f->body[1] == 1);
    f = last_frame();
    CHECK(f && f->type == BR_TRIGGER && f->body[0] == 8 && br_get_u32(f->body + 1) == 1);
    CHECK(f && f->seq == (uint16_t)(fb.frames[fb.n_frames - 2].seq + 1));
    fb.now += 10;
    fb.in_level[8] = 0;
    br_core_poll(&core);
    CHECK(last_frame()->type == BR_GPIO_EVENT); /* falling edge: no trigger */
    fb.now += 10;
    fb.in_level[8] = 1;
    before = fb.n_frames;
    br_core_poll(&core);
    CHECK(fb.n_frames == before + 1); /* inside the debounce time: event, no trigger */
    fb.now += 200;
    fb.in_level[8] = 0;
    br_core_poll(&core);
    fb.in_level[8] = 1;
    br_core_poll(&core);
    f = last_frame();
    CHECK(f && f->type == BR_TRIGGER && br_get_u32(f->body + 1) == 2);
}

static void test_bad_frames_counted_and_reported_once_per_second(void)
{
    const br_frame *f;
    int i, errors = 0;
    setup();
    for (i = 0; i < 5; i++) {
        br_core_rx(&core, (const uint8_t *)"\x00\x05\x41\x00", 4);
        br_core_poll(&core);
    }
    CHECK(core.rx_bad == 5);
    for (i = 0; i < fb.n_frames; i++) {
        errors += fb.frames[i].type == BR_ERROR;
    }
    CHECK(errors == 1);
    fb.now += 1000;
    br_core_poll(&core);
    f = last_frame();
    CHECK(f && f->type == BR_ERROR && f->body[0] == BR_ERR_COBS && br_get_u32(f->body + 1) == 5);
    CHECK(fb.bad_out == 0);
}

typedef void (*test_fn)(void);
static const struct {
    const char *name;
    test_fn fn;
} k_tests[] = {
    {"crc_check_value", test_crc_check_value},
    {"cobs_known_vectors", test_cobs_known_vectors},
    {"cobs_rejects_bad_input", test_cobs_rejects_bad_input},
    {"vectors", test_vectors},
    {"decoder_resyncs_after_noise", test_decoder_resyncs_after_noise},
    {"noise_and_bit_flips_deliver_every_good_frame",
     test_noise_and_bit_flips_deliver_every_good_frame},
    {"boot_event_and_hello", test_boot_event_and_hello},
    {"ping_echoes_and_unknown_type_nacks", test_ping_echoes_and_unknown_type_nacks},
    {"telemetry", test_telemetry},
    {"gpio_set_with_hold", test_gpio_set_with_hold},
    {"watchdog_resets_when_not_kicked", test_watchdog_resets_when_not_kicked},
    {"software_reset_after_ack", test_software_reset_after_ack},
    {"input_events_and_trigger_debounce", test_input_events_and_trigger_debounce},
    {"bad_frames_counted_and_reported_once_per_second",
     test_bad_frames_counted_and_reported_once_per_second},
};

int main(int argc, char **argv)
{
    size_t i;
    int passed = 0, failed = 0;
    g_vectors_path = argc > 1 ? argv[1] : "../vectors/frames.txt";
    for (i = 0; i < sizeof k_tests / sizeof k_tests[0]; i++) {
        int before = g_failed_checks;
        k_tests[i].fn();
        if (g_failed_checks == before) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL %s\n", k_tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
