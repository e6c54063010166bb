/* Firmware bridge board side: dispatcher with a handler table, watchdog, GPIO, triggers.
 * Portable C99: no allocation, fixed buffers; the platform is reached only through br_hal. */
#ifndef BRIDGE_CORE_H
#define BRIDGE_CORE_H

#include "bridge_proto.h"

#define BR_FW_MAJOR 1u
#define BR_FW_MINOR 0u
#define BR_FW_PATCH 0u
#define BR_MAX_PINS 32u

enum br_type {
    BR_HELLO = 0x01,
    BR_PING = 0x02,
    BR_TELEMETRY_GET = 0x03,
    BR_WDT_CONFIG = 0x04,
    BR_WDT_KICK = 0x05,
    BR_GPIO_SET = 0x06,
    BR_GPIO_GET = 0x07,
    BR_TRIGGER_CONFIG = 0x08,
    BR_RESET = 0x09,
    BR_RESET_REASON_GET = 0x0A,
    BR_SIM_INPUT = 0x30,
    BR_SIM_LOAD = 0x31,
    BR_GPIO_EVENT = 0x40,
    BR_TRIGGER = 0x41,
    BR_BOOT = 0x42,
    BR_ERROR = 0x50,
    BR_ACK = 0x7E,
    BR_NACK = 0x7F,
    BR_RESPONSE = 0x80
};

enum br_nack { BR_NACK_UNKNOWN_TYPE = 1, BR_NACK_BAD_LENGTH, BR_NACK_BAD_ARG, BR_NACK_STATE,
               BR_NACK_UNSUPPORTED };
enum br_reset { BR_RESET_POWER_ON = 0, BR_RESET_WATCHDOG = 1, BR_RESET_SOFTWARE = 2,
                BR_RESET_BROWN_OUT = 3, BR_RESET_UNKNOWN = 255 };
enum br_caps { BR_CAP_TELEMETRY = 1, BR_CAP_WATCHDOG = 2, BR_CAP_GPIO = 4, BR_CAP_TRIGGER = 8,
               BR_CAP_SIM = 16 };

#define BR_WDT_MIN_MS 100u
#define BR_WDT_MAX_MS 600000u
#define BR_ERROR_REPORT_MS 1000u
#define BR_NO_PIN 0xFFu

typedef struct {
    int16_t board_temp_cc;
    int16_t accel_temp_cc;
    uint16_t rail_mv;
    uint16_t rail_ma;
    uint16_t fan_rpm;
    uint16_t accel_util_permille;
} br_sensors;

typedef struct {
    void *ctx;
    void (*send)(void *ctx, const uint8_t *data, size_t n);
    uint32_t (*millis)(void *ctx);
    void (*gpio_write)(void *ctx, uint8_t pin, uint8_t value);
    uint8_t (*gpio_read)(void *ctx, uint8_t pin);
    void (*read_sensors)(void *ctx, br_sensors *out);
    /* Reset the board; real hardware does not return. reason is one of br_reset. */
    void (*system_reset)(void *ctx, uint8_t reason);
} br_hal;

typedef struct {
    const char *name; /* <= 32 bytes */
    uint32_t bitstream;
    uint32_t outputs; /* pin masks */
    uint32_t inputs;
    uint32_t caps;
} br_board_info;

typedef struct br_core br_core;
/* A handler answers the request itself (br_core_reply / br_core_ack / br_core_nack). */
typedef void (*br_handler)(br_core *core, const br_frame *req);

typedef struct {
    uint8_t type;
    uint8_t min_len;
    uint8_t max_len;
    br_handler fn;
} br_handler_entry;

struct br_core {
    const br_hal *hal;
    const br_board_info *info;
    const br_handler_entry *extra;
    size_t n_extra;
    br_decoder dec;
    br_frame rx;
    uint8_t tx[BR_MAX_WIRE];
    uint8_t reset_reason;
    uint16_t boot_count;
    uint32_t boot_ms;
    uint32_t wdt_timeout_ms;
    uint32_t wdt_last_kick;
    uint32_t out_levels;
    uint32_t in_levels;
    uint32_t hold_mask;
    uint32_t hold_until[BR_MAX_PINS];
    uint8_t trig_pin;
    uint8_t trig_edge;
    uint16_t trig_debounce_ms;
    uint32_t trig_last_ms;
    uint32_t trig_count;
    uint16_t event_seq;
    uint32_t rx_ok;
    uint32_t rx_bad;
    uint8_t err_code;
    int err_pending;
    int err_reported;
    uint32_t err_report_ms;
    int reset_pending;
};

/* Start (or restart after a reset): outputs low, watchdog off, BOOT event sent. */
void br_core_init(br_core *core, const br_hal *hal, const br_board_info *info,
                  const br_handler_entry *extra, size_t n_extra, uint8_t reset_reason,
                  uint16_t boot_count);
/* Feed received bytes: frames are decoded and dispatched as they complete. */
void br_core_rx(br_core *core, const uint8_t *data, size_t n);
/* Call often from the main loop: watchdog, output holds, input edges, error reports. */
void br_core_poll(br_core *core);

void br_core_reply(br_core *core, uint8_t type, uint16_t seq, const uint8_t *body, size_t len);
void br_core_ack(br_core *core, const br_frame *req);
void br_core_nack(br_core *core, const br_frame *req, uint8_t code);
void br_core_event(br_core *core, uint8_t type, const uint8_t *body, size_t len);

#endif
