#include "bridge_core.h"

#include <string.h>

static int due(uint32_t now, uint32_t deadline)
{
    return (int32_t)(now - deadline) >= 0; /* wrap-safe */
}

static uint32_t now_ms(const br_core *c)
{
    return c->hal->millis(c->hal->ctx);
}

static int is_output(const br_core *c, uint8_t pin)
{
    return pin < BR_MAX_PINS && ((c->info->outputs >> pin) & 1u);
}

static int is_input(const br_core *c, uint8_t pin)
{
    return pin < BR_MAX_PINS && ((c->info->inputs >> pin) & 1u);
}

static void set_output(br_core *c, uint8_t pin, uint8_t value)
{
    c->hal->gpio_write(c->hal->ctx, pin, value);
    if (value) {
        c->out_levels |= (1u << pin);
    } else {
        c->out_levels &= ~(1u << pin);
    }
}

void br_core_reply(br_core *c, uint8_t type, uint16_t seq, const uint8_t *body, size_t len)
{
    size_t n = br_frame_encode(type, seq, body, len, c->tx, sizeof c->tx);
    if (n > 0) {
        c->hal->send(c->hal->ctx, c->tx, n);
    }
}

void br_core_ack(br_core *c, const br_frame *req)
{
    br_core_reply(c, BR_ACK, req->seq, &req->type, 1);
}

void br_core_nack(br_core *c, const br_frame *req, uint8_t code)
{
    uint8_t body[2];
    body[0] = req->type;
    body[1] = code;
    br_core_reply(c, BR_NACK, req->seq, body, 2);
}

void br_core_event(br_core *c, uint8_t type, const uint8_t *body, size_t len)
{
    c->event_seq = (uint16_t)(c->event_seq + 1u);
    br_core_reply(c, type, c->event_seq, body, len);
}

/* ---- handlers ------------------------------------------------------------------------ */

static void h_hello(br_core *c, const br_frame *req)
{
    uint8_t b[30 + 32];
    size_t name_len = strlen(c->info->name);
    if (name_len > 32) {
        name_len = 32;
    }
    b[0] = BR_VERSION;
    b[1] = BR_FW_MAJOR;
    b[2] = BR_FW_MINOR;
    b[3] = BR_FW_PATCH;
    br_put_u32(b + 4, c->info->bitstream);
    br_put_u32(b + 8, c->info->caps);
    b[12] = c->reset_reason;
    br_put_u16(b + 13, c->boot_count);
    br_put_u16(b + 15, BR_MAX_BODY);
    br_put_u32(b + 17, c->info->outputs);
    br_put_u32(b + 21, c->info->inputs);
    b[25] = (uint8_t)name_len;
    memcpy(b + 26, c->info->name, name_len);
    br_core_reply(c, BR_HELLO | BR_RESPONSE, req->seq, b, 26 + name_len);
}

static void h_ping(br_core *c, const br_frame *req)
{
    br_core_reply(c, BR_PING | BR_RESPONSE, req->seq, req->body, req->len);
}

static void h_telemetry(br_core *c, const br_frame *req)
{
    uint8_t b[40];
    br_sensors s;
    memset(&s, 0, sizeof s);
    c->hal->read_sensors(c->hal->ctx, &s);
    br_put_u32(b + 0, now_ms(c) - c->boot_ms);
    br_put_u16(b + 4, (uint16_t)s.board_temp_cc);
    br_put_u16(b + 6, (uint16_t)s.accel_temp_cc);
    br_put_u16(b + 8, s.rail_mv);
    br_put_u16(b + 10, s.rail_ma);
    br_put_u16(b + 12, s.fan_rpm);
    br_put_u16(b + 14, s.accel_util_permille);
    br_put_u32(b + 16, c->info->bitstream);
    br_put_u32(b + 20, c->wdt_timeout_ms);
    br_put_u32(b + 24, c->out_levels);
    br_put_u32(b + 28, c->in_levels);
    br_put_u32(b + 32, c->rx_ok);
    br_put_u32(b + 36, c->rx_bad);
    br_core_reply(c, BR_TELEMETRY_GET | BR_RESPONSE, req->seq, b, 40);
}

static void h_wdt_config(br_core *c, const br_frame *req)
{
    uint32_t t = br_get_u32(req->body);
    if (t != 0 && (t < BR_WDT_MIN_MS || t > BR_WDT_MAX_MS)) {
        br_core_nack(c, req, BR_NACK_BAD_ARG);
        return;
    }
    c->wdt_timeout_ms = t;
    c->wdt_last_kick = now_ms(c);
    br_core_ack(c, req);
}

static void h_wdt_kick(br_core *c, const br_frame *req)
{
    if (c->wdt_timeout_ms == 0) {
        br_core_nack(c, req, BR_NACK_STATE);
        return;
    }
    c->wdt_last_kick = now_ms(c);
    br_core_ack(c, req);
}

static void h_gpio_set(br_core *c, const br_frame *req)
{
    uint8_t pin = req->body[0], value = req->body[1];
    uint32_t hold = br_get_u32(req->body + 2);
    if (!is_output(c, pin) || value > 1) {
        br_core_nack(c, req, BR_NACK_BAD_ARG);
        return;
    }
    set_output(c, pin, value);
    if (hold > 0) {
        c->hold_mask |= (1u << pin);
        c->hold_until[pin] = now_ms(c) + hold;
    } else {
        c->hold_mask &= ~(1u << pin);
    }
    br_core_ack(c, req);
}

static void h_gpio_get(br_core *c, const br_frame *req)
{
    uint8_t b[3];
    uint8_t pin = req->body[0];
    if (is_output(c, pin)) {
        b[1] = (uint8_t)((c->out_levels >> pin) & 1u);
        b[2] = 1;
    } else if (is_input(c, pin)) {
        b[1] = c->hal->gpio_read(c->hal->ctx, pin) ? 1 : 0;
        b[2] = 0;
    } else {
        br_core_nack(c, req, BR_NACK_BAD_ARG);
        return;
    }
    b[0] = pin;
    br_core_reply(c, BR_GPIO_GET | BR_RESPONSE, req->seq, b, 3);
}

static void h_trigger_config(br_core *c, const br_frame *req)
{
    uint8_t pin = req->body[0], edge = req->body[1];
    if ((pin != BR_NO_PIN && !is_input(c, pin)) || edge < 1 || edge > 3) {
        br_core_nack(c, req, BR_NACK_BAD_ARG);
        return;
    }
    c->trig_pin = pin;
    c->trig_edge = edge;
    c->trig_debounce_ms = br_get_u16(req->body + 2);
    c->trig_last_ms = now_ms(c) - c->trig_debounce_ms - 1u;
    br_core_ack(c, req);
}

static void h_reset(br_core *c, const br_frame *req)
{
    br_core_ack(c, req);
    c->reset_pending = 1; /* after the ACK is out, on the next poll */
}

static void h_reset_reason(br_core *c, const br_frame *req)
{
    uint8_t b[3];
    b[0] = c->reset_reason;
    br_put_u16(b + 1, c->boot_count);
    br_core_reply(c, BR_RESET_REASON_GET | BR_RESPONSE, req->seq, b, 3);
}

static const br_handler_entry k_handlers[] = {
    {BR_HELLO, 0, 0, h_hello},
    {BR_PING, 0, BR_MAX_BODY, h_ping},
    {BR_TELEMETRY_GET, 0, 0, h_telemetry},
    {BR_WDT_CONFIG, 4, 4, h_wdt_config},
    {BR_WDT_KICK, 0, 0, h_wdt_kick},
    {BR_GPIO_SET, 6, 6, h_gpio_set},
    {BR_GPIO_GET, 1, 1, h_gpio_get},
    {BR_TRIGGER_CONFIG, 4, 4, h_trigger_config},
    {BR_RESET, 0, 0, h_reset},
    {BR_RESET_REASON_GET, 0, 0, h_reset_reason},
};

static const br_handler_entry *find(const br_handler_entry *t, size_t n, uint8_t type)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (t[i].type == type) {
            return &t[i];
        }
    }
    return NULL;
}

static void dispatch(br_core *c, const br_frame *req)
{
    const br_handler_entry *h = find(k_handlers, sizeof k_handlers / sizeof k_handlers[0], req->type);
    if (h == NULL && c->extra != NULL) {
        h = find(c->extra, c->n_extra, req->type);
    }
    if (h == NULL) {
        br_core_nack(c, req, BR_NACK_UNKNOWN_TYPE);
    } else if (req->len < h->min_len || req->len > h->max_len) {
        br_core_nack(c, req, BR_NACK_BAD_LENGTH);
    } else {
        h->fn(c, req);
    }
}

/* ---- lifecycle ----------------------------------------------------------------------- */

void br_core_init(br_core *c, const br_hal *hal, const br_board_info *info,
                  const br_handler_entry *extra, size_t n_extra, uint8_t reset_reason,
                  uint16_t boot_count)
{
    uint8_t pin, b[3];
    memset(c, 0, sizeof *c);
    c->hal = hal;
    c->info = info;
    c->extra = extra;
    c->n_extra = n_extra;
    c->reset_reason = reset_reason;
    c->boot_count = boot_count;
    c->boot_ms = now_ms(c);
    c->trig_pin = BR_NO_PIN;
    br_decoder_init(&c->dec);
    for (pin = 0; pin < BR_MAX_PINS; pin++) {
        if (is_output(c, pin)) {
            set_output(c, pin, 0);
        } else if (is_input(c, pin) && hal->gpio_read(hal->ctx, pin)) {
            c->in_levels |= (1u << pin);
        }
    }
    b[0] = reset_reason;
    br_put_u16(b + 1, boot_count);
    br_core_event(c, BR_BOOT, b, 3);
}

void br_core_rx(br_core *c, const uint8_t *data, size_t n)
{
    size_t i;
    br_status st = BR_OK;
    for (i = 0; i < n; i++) {
        int r = br_decoder_push(&c->dec, data[i], &c->rx, &st);
        if (r > 0) {
            c->rx_ok++;
            dispatch(c, &c->rx);
        } else if (r < 0) {
            c->rx_bad++;
            if (!c->err_pending) {
                c->err_code = (uint8_t)st;
            }
            c->err_pending = 1;
        }
    }
}

static void poll_inputs(br_core *c, uint32_t now)
{
    uint8_t pin, b[9];
    for (pin = 0; pin < BR_MAX_PINS; pin++) {
        uint32_t bit = 1u << pin;
        uint8_t level, was;
        if (!is_input(c, pin)) {
            continue;
        }
        level = c->hal->gpio_read(c->hal->ctx, pin) ? 1 : 0;
        was = (c->in_levels & bit) ? 1 : 0;
        if (level == was) {
            continue;
        }
        c->in_levels ^= bit;
        b[0] = pin;
        b[1] = level;
        br_put_u32(b + 2, now - c->boot_ms);
        br_core_event(c, BR_GPIO_EVENT, b, 6);
        if (pin == c->trig_pin && (c->trig_edge & (level ? 1u : 2u)) &&
            (uint32_t)(now - c->trig_last_ms) >= c->trig_debounce_ms) {
            c->trig_last_ms = now;
            c->trig_count++;
            b[0] = pin;
            br_put_u32(b + 1, c->trig_count);
            br_put_u32(b + 5, now - c->boot_ms);
            br_core_event(c, BR_TRIGGER, b, 9);
        }
    }
}

void br_core_poll(br_core *c)
{
    uint32_t now = now_ms(c);
    uint8_t pin, b[5];
    if (c->reset_pending) {
        c->hal->system_reset(c->hal->ctx, BR_RESET_SOFTWARE);
        return;
    }
    if (c->wdt_timeout_ms != 0 && due(now, c->wdt_last_kick + c->wdt_timeout_ms)) {
        c->hal->system_reset(c->hal->ctx, BR_RESET_WATCHDOG);
        return;
    }
    for (pin = 0; pin < BR_MAX_PINS && c->hold_mask != 0; pin++) {
        if ((c->hold_mask >> pin) & 1u && due(now, c->hold_until[pin])) {
            c->hold_mask &= ~(1u << pin);
            set_output(c, pin, ((c->out_levels >> pin) & 1u) ? 0 : 1);
        }
    }
    poll_inputs(c, now);
    if (c->err_pending && (!c->err_reported || due(now, c->err_report_ms + BR_ERROR_REPORT_MS))) {
        b[0] = c->err_code;
        br_put_u32(b + 1, c->rx_bad);
        br_core_event(c, BR_ERROR, b, 5);
        c->err_pending = 0;
        c->err_reported = 1;
        c->err_report_ms = now;
    }
}
