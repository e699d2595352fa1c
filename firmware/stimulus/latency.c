/*
 * latency.c - the latency self-test (see latency.h): random flashes, stamped answers.
 *
 * The flash's edges are made by the timer interrupt (outputs.c), so its rising edge is stamped
 * within a few microseconds of the pin change; the answer is stamped by the receive interrupt
 * when the line's '\n' arrives (uart.c). Both stamps are therefore independent of what the main
 * loop was doing; only the reports wait for it.
 */
#include "latency.h"

#include "clock.h"
#include "outputs.h"
#include "replies.h"

typedef struct {
    bool active;
    uint32_t id; /* the LATENCY command, for DONE and CANCEL */
    uint8_t channel;
    uint32_t min_us;
    uint32_t max_us;
    uint32_t on_us;
    uint16_t count;    /* flashes to make; 0 = until stopped */
    uint32_t made;     /* flashes started: the number of the current one */
    bool answered;     /* the current flash got its LAT or MISS */
    uint32_t random;   /* xorshift32 state, never 0 */
} latency_t;

static latency_t test;

/* xorshift32 (Marsaglia 2003): small, fast on an 8-bit CPU, and good enough to make the flash
 * times unpredictable to the host, which is all the test needs. */
static uint32_t next_random(void)
{
    uint32_t x = test.random;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    test.random = x;
    return x;
}

/* Uniform in [min_us, max_us] (the modulo bias is below 1e-3 for ranges under 4000 s). */
static uint32_t random_wait_us(void)
{
    uint32_t span = test.max_us - test.min_us;
    return test.min_us + (span == 0 ? 0 : next_random() % (span + 1));
}

static void schedule_flash(uint32_t from_us)
{
    test.made++;
    test.answered = false;
    outputs_flash_at(test.channel, from_us + random_wait_us(), test.on_us);
}

uint32_t latency_start(const command_t *cmd)
{
    latency_stop();
    uint32_t now = clock_micros();
    test = (latency_t){.active = true, .id = cmd->id, .channel = cmd->channel,
                       .min_us = cmd->min_us, .max_us = cmd->max_us, .on_us = cmd->on_us,
                       .count = cmd->count, .made = 0, .answered = false,
                       .random = cmd->seed};
    if (test.random == 0) {
        /* No seed given: the clock at this moment depends on when the host sent the line,
         * to the microsecond; mixed so that close times give unrelated sequences. */
        test.random = (now * 2654435761UL) ^ 0x9E3779B9UL;
        if (test.random == 0) {
            test.random = 1;
        }
    }
    schedule_flash(now);
    return now;
}

void latency_stop(void)
{
    if (!test.active) {
        return;
    }
    test.active = false;
    reply_cancel(test.id, outputs_flash_cancel());
}

bool latency_ends_test(const command_t *cmd)
{
    if (!test.active) {
        return false;
    }
    switch (cmd->kind) {
    case CMD_STOP:
    case CMD_RESET:
    case CMD_LATENCY:
        return true;
    case CMD_ON:
    case CMD_OFF:
    case CMD_PULSE:
    case CMD_PATTERN:
        return cmd->channel == test.channel;
    default:
        return false;
    }
}

void latency_on_command(const command_t *cmd, uint32_t line_us)
{
    if (!test.active || test.answered || cmd->kind == CMD_NONE || latency_ends_test(cmd)) {
        return;
    }
    uint32_t rise_us;
    flash_status_t status = outputs_flash_status(&rise_us);
    if ((status == FLASH_ON || status == FLASH_OVER) && clock_reached(line_us, rise_us)) {
        test.answered = true;
        reply_latency(test.made, rise_us, line_us);
    }
}

void latency_poll(void)
{
    if (!test.active) {
        return;
    }
    uint32_t rise_us;
    flash_status_t status = outputs_flash_status(&rise_us);
    uint32_t now = clock_micros();
    if (status == FLASH_NONE) {
        /* Cut short by something that drove its channel: the test cannot go on. */
        test.active = false;
        reply_cancel(test.id, now);
        return;
    }
    if (status == FLASH_WAITING) {
        return;
    }
    if (!test.answered && clock_reached(now, rise_us + LATENCY_WINDOW_US)) {
        test.answered = true;
        reply_miss(test.made, rise_us);
    }
    if (status != FLASH_OVER || !test.answered) {
        return;
    }
    if (test.count != 0 && test.made >= test.count) {
        test.active = false;
        reply_done(test.id, now);
        return;
    }
    schedule_flash(now);
}
