/* Board simulator: the portable core behind a HAL on stdin/stdout, so that
 *   socat PTY,link=/tmp/ttyBRIDGE,raw,echo=0 EXEC:./build/bridge_sim
 * puts a "board" behind a real pseudo-terminal.
 *
 * Simulated board: outputs on pins 0-7, inputs on pins 8-15; pin 15 is wired to output 7
 * (loopback), the other inputs are driven by the SIM_INPUT test request (0x30). Sensors follow a
 * slow deterministic load cycle. A watchdog or software reset re-initialises the core and keeps
 * the boot count, like a real MCU whose RAM is cleared but whose reset-cause register survives.
 *
 * Options: --noise PERCENT [--seed N]: corrupt PERCENT % of the frames this board sends (one
 * flipped bit) and put random bytes between frames as often, to exercise the host's resync.
 * --garble-boot: corrupt the BOOT event after every start and reset (line noise at power-on),
 * so the host sees the reset only as its event seq going backwards.
 *
 * Thermal model: after the first SIM_LOAD request (0x31, `fps_centi u16`: the host's frame
 * rate, relayed by a test), the board temperature follows that frame rate with a first-order
 * lag instead of the load cycle: steady state = 40 C + --heat-per-fps CENTI_C (default 150 =
 * 1.5 C per frame/s), time constant --thermal-tau-ms N (default 3000); it heats while the
 * host runs fast and cools when its frame rate drops. Current and accelerator load follow it.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge_core.h"

#define SIM_LOOP_OUT 7u
#define SIM_LOOP_IN 15u

typedef struct {
    uint8_t out[BR_MAX_PINS];
    uint8_t in[BR_MAX_PINS];
    int reset_requested;
    uint8_t reset_reason;
    unsigned noise_pct;
    int garble_boot; /* --garble-boot */
    int garble_next; /* corrupt the next frame sent (the BOOT event of a (re)start) */
    uint32_t rng;
    struct timespec t0;
    int thermal_on;       /* a SIM_LOAD arrived: the thermal model drives the temperatures */
    double temp_c;        /* board temperature of the thermal model */
    double load_fps;      /* the host frame rate last relayed */
    uint32_t thermal_ms;  /* the model's time */
    double heat_per_fps;  /* C per frame/s at steady state */
    double tau_ms;        /* time constant */
} sim_board;

#define SIM_AMBIENT_C 40.0
#define SIM_THERMAL_STEP_MS 10u

static sim_board g_sim;

static uint32_t rng_next(sim_board *s)
{
    uint32_t x = s->rng; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->rng = x ? x : 1u;
    return s->rng;
}

static void write_all(const uint8_t *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, data, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            exit(0); /* the host side went away */
        }
        data += (size_t)w;
        n -= (size_t)w;
    }
}

static void sim_send(void *ctx, const uint8_t *data, size_t n)
{
    sim_board *s = ctx;
    uint8_t buf[BR_MAX_WIRE];
    if (s->garble_next && n > 2 && n <= sizeof buf) {
        s->garble_next = 0;
        memcpy(buf, data, n);
        buf[n / 2] ^= 0x10u; /* one flipped bit inside the frame: the host's CRC check fails */
        write_all(buf, n);
        return;
    }
    if (s->noise_pct == 0 || n > sizeof buf) {
        write_all(data, n);
        return;
    }
    if (rng_next(s) % 100u < s->noise_pct) {
        uint8_t junk[8];
        size_t k, len = 1u + rng_next(s) % sizeof junk;
        for (k = 0; k < len; k++) {
            junk[k] = (uint8_t)rng_next(s);
        }
        write_all(junk, len);
    }
    memcpy(buf, data, n);
    if (rng_next(s) % 100u < s->noise_pct && n > 2) {
        size_t at = 1u + rng_next(s) % (n - 2u); /* inside the frame, not the delimiters */
        buf[at] ^= (uint8_t)(1u << (rng_next(s) % 8u));
    }
    write_all(buf, n);
}

static uint32_t sim_millis(void *ctx)
{
    sim_board *s = ctx;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)((t.tv_sec - s->t0.tv_sec) * 1000 + (t.tv_nsec - s->t0.tv_nsec) / 1000000);
}

static void sim_gpio_write(void *ctx, uint8_t pin, uint8_t value)
{
    sim_board *s = ctx;
    if (pin < BR_MAX_PINS) {
        s->out[pin] = value;
    }
}

static uint8_t sim_gpio_read(void *ctx, uint8_t pin)
{
    sim_board *s = ctx;
    if (pin == SIM_LOOP_IN) {
        return s->out[SIM_LOOP_OUT];
    }
    return pin < BR_MAX_PINS ? s->in[pin] : 0;
}

static void thermal_advance(sim_board *s, uint32_t now)
{
    /* first-order lag in 10 ms steps (exact enough, no libm): T += (Tss - T) * dt / (tau + dt) */
    double target = SIM_AMBIENT_C + s->heat_per_fps * s->load_fps;
    double a = (double)SIM_THERMAL_STEP_MS / (s->tau_ms + (double)SIM_THERMAL_STEP_MS);
    while ((uint32_t)(now - s->thermal_ms) >= SIM_THERMAL_STEP_MS) {
        s->temp_c += (target - s->temp_c) * a;
        s->thermal_ms += SIM_THERMAL_STEP_MS;
    }
}

static void sim_read_sensors(void *ctx, br_sensors *o)
{
    sim_board *s = ctx;
    if (s->thermal_on) {
        double util = s->load_fps * 25.0; /* permille: 40 frames/s = full load */
        thermal_advance(s, sim_millis(ctx));
        if (util > 1000.0) {
            util = 1000.0;
        }
        o->accel_util_permille = (uint16_t)util;
        o->board_temp_cc = (int16_t)(s->temp_c * 100.0);
        o->accel_temp_cc = (int16_t)((s->temp_c + 4.0) * 100.0);
        o->rail_mv = 12000;
        o->rail_ma = (uint16_t)(600.0 + util);
        o->fan_rpm = (uint16_t)(1800.0 + util * 3.0);
        return;
    }
    /* a 20 s load cycle: utilisation 20 % .. 90 %, temperatures and current follow it */
    uint32_t phase = sim_millis(ctx) % 20000u;
    uint32_t tri = phase < 10000u ? phase : 20000u - phase; /* 0..10000 */
    uint16_t util = (uint16_t)(200u + tri * 700u / 10000u);
    o->accel_util_permille = util;
    o->board_temp_cc = (int16_t)(3800 + util * 2);
    o->accel_temp_cc = (int16_t)(4200 + util * 3);
    o->rail_mv = 12000;
    o->rail_ma = (uint16_t)(600u + util);
    o->fan_rpm = (uint16_t)(1800u + util * 3u);
}

static void sim_system_reset(void *ctx, uint8_t reason)
{
    sim_board *s = ctx;
    s->reset_requested = 1;
    s->reset_reason = reason;
}

static void sim_input(br_core *c, const br_frame *req)
{
    uint8_t pin = req->body[0];
    if (pin >= BR_MAX_PINS || !((c->info->inputs >> pin) & 1u) || pin == SIM_LOOP_IN ||
        req->body[1] > 1) {
        br_core_nack(c, req, BR_NACK_BAD_ARG);
        return;
    }
    g_sim.in[pin] = req->body[1];
    br_core_ack(c, req);
}

static void sim_load(br_core *c, const br_frame *req)
{
    uint16_t centi = (uint16_t)(req->body[0] | (req->body[1] << 8));
    uint32_t now = sim_millis(&g_sim);
    if (!g_sim.thermal_on) {
        g_sim.thermal_on = 1;
        g_sim.temp_c = SIM_AMBIENT_C;
        g_sim.thermal_ms = now;
    }
    thermal_advance(&g_sim, now); /* up to now at the old rate, then the new one */
    g_sim.load_fps = (double)centi / 100.0;
    br_core_ack(c, req);
}

static const br_handler_entry k_sim_handlers[] = {{BR_SIM_INPUT, 2, 2, sim_input},
                                                  {BR_SIM_LOAD, 2, 2, sim_load}};

static const br_hal k_hal = {&g_sim,         sim_send,         sim_millis, sim_gpio_write,
                             sim_gpio_read, sim_read_sensors, sim_system_reset};

static const br_board_info k_info = {
    "edge-sim", 0x20260101u, 0x000000FFu, 0x0000FF00u,
    BR_CAP_TELEMETRY | BR_CAP_WATCHDOG | BR_CAP_GPIO | BR_CAP_TRIGGER | BR_CAP_SIM};

static br_core g_core;

int main(int argc, char **argv)
{
    int i;
    uint16_t boots = 1;
    g_sim.rng = 0x9E3779B9u;
    g_sim.heat_per_fps = 1.5;
    g_sim.tau_ms = 3000.0;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--noise") == 0 && i + 1 < argc) {
            g_sim.noise_pct = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            g_sim.rng = (uint32_t)strtoul(argv[++i], NULL, 10) | 1u;
        } else if (strcmp(argv[i], "--garble-boot") == 0) {
            g_sim.garble_boot = 1;
        } else if (strcmp(argv[i], "--heat-per-fps") == 0 && i + 1 < argc) {
            g_sim.heat_per_fps = (double)strtoul(argv[++i], NULL, 10) / 100.0;
        } else if (strcmp(argv[i], "--thermal-tau-ms") == 0 && i + 1 < argc) {
            g_sim.tau_ms = (double)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--noise PERCENT] [--seed N] [--garble-boot] "
                            "[--heat-per-fps CENTI_C] [--thermal-tau-ms N]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    clock_gettime(CLOCK_MONOTONIC, &g_sim.t0);
    g_sim.garble_next = g_sim.garble_boot;
    br_core_init(&g_core, &k_hal, &k_info, k_sim_handlers, 2, BR_RESET_POWER_ON, boots);
    for (;;) {
        uint8_t buf[256];
        struct pollfd p;
        p.fd = STDIN_FILENO;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, 2) > 0) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                return 0; /* host side closed */
            }
            if (n > 0) {
                br_core_rx(&g_core, buf, (size_t)n);
            }
        }
        br_core_poll(&g_core);
        if (g_sim.reset_requested) {
            g_sim.reset_requested = 0;
            boots++;
            g_sim.garble_next = g_sim.garble_boot;
            br_core_init(&g_core, &k_hal, &k_info, k_sim_handlers, 2, g_sim.reset_reason, boots);
        }
    }
}
