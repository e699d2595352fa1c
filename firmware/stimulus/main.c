/*
 * main.c - stimulus box firmware for an ATmega328P (Arduino Uno / Nano) at 16 MHz.
 *
 * The host sends one command per line ("17 PULSE 2 500"); the board answers each with
 * "ACK <id> <board_time_us>" or "ERR <id> <CODE>", and times pulses and patterns itself.
 * The protocol is documented in docs/stimulation-protocol.md, the wiring in docs/arduino.md.
 *
 * Edges of pulses and patterns are made in the timer interrupt (outputs.c). The main loop
 * reports the ones that ended, handles at most one command line, and sleeps until the next
 * byte, edge or timer overflow.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "config.h"
#include "latency.h"
#include "outputs.h"
#include "protocol.h"
#include "replies.h"
#include "uart.h"

/* After a watchdog reset the watchdog stays on (with its shortest timeout) until switched off;
 * switch it off before the C start-up code runs, or the board could restart forever. */
void watchdog_off_early(void) __attribute__((naked, used, section(".init3")));
void watchdog_off_early(void)
{
    MCUSR = 0;
    wdt_disable();
}

typedef struct {
    char text[LINE_MAX + 1];
    uint8_t length;
    bool too_long;
    bool damaged;
    uint32_t done_us; /* board time its '\n' arrived (the latency test's stamp) */
} line_t;

/* Collect bytes into `line`; true when a whole line ('\n') is in it. '\r' is dropped so that
 * terminals that send CRLF (the Arduino serial monitor) work too; any other byte is kept, and
 * a line with bytes that are not part of the protocol gets an ERR. */
static bool read_line(line_t *line)
{
    uint8_t byte;
    while (uart_read(&byte)) {
        if (uart_take_rx_damage()) {
            line->damaged = true;
        }
        if (byte == '\n') {
            line->text[line->length] = '\0';
            if (!uart_take_line_time(&line->done_us)) {
                line->done_us = clock_micros(); /* stamp lost: later, never earlier */
            }
            return true;
        }
        if (byte == '\r') {
            continue;
        }
        if (byte == '\0') {
            byte = '?'; /* a NUL would end the C string early and hide the rest of the line */
        }
        if (line->length < LINE_MAX) {
            line->text[line->length++] = (char)byte;
        } else {
            line->too_long = true;
        }
    }
    return false;
}

static void execute(const command_t *cmd)
{
    uint32_t now;
    if (latency_ends_test(cmd)) {
        latency_stop(); /* its CANCEL comes before this command's ACK */
    }
    switch (cmd->kind) {
    case CMD_NONE:
        return;
    case CMD_PING:
        now = clock_micros();
        break;
    case CMD_HELLO:
        reply_hello();
        now = clock_micros();
        break;
    case CMD_RESET:
        now = outputs_reset_all();
        break;
    case CMD_ON:
        now = outputs_set(cmd->channel, true);
        break;
    case CMD_OFF:
        now = outputs_set(cmd->channel, false);
        break;
    case CMD_PULSE:
    case CMD_PATTERN:
        now = outputs_start(cmd->channel, cmd->id, cmd->on_us, cmd->off_us, cmd->count);
        break;
    case CMD_LATENCY:
        now = latency_start(cmd);
        break;
    case CMD_SEEN:
    case CMD_STOP:
        now = clock_micros();
        break;
    default:
        reply_error(true, cmd->id, ERR_UNKNOWN_COMMAND);
        return;
    }
    outputs_report(); /* the CANCEL of what this command cut short comes before its ACK */
    reply_ack(cmd->id, now);
}

static void handle(line_t *line)
{
    uint32_t id = 0;
    if (line->damaged || line->too_long) {
        /* Do not act on a line we did not receive whole; name its id if it is readable. */
        bool has_id = protocol_leading_id(line->text, &id);
        reply_error(has_id, id, line->damaged ? ERR_RX_OVERFLOW : ERR_LINE_TOO_LONG);
        return;
    }
    command_t cmd;
    parse_status_t status = protocol_parse(line->text, &cmd);
    if (status != PARSE_OK) {
        reply_error(cmd.has_id, cmd.id, status);
        return;
    }
    latency_on_command(&cmd, line->done_us); /* its LAT comes before the command's reply */
    execute(&cmd);
}

/* Sleep until an interrupt: a byte, an edge made by the timer, or the timer overflow. */
static void idle(void)
{
    cli();
    if (uart_rx_pending() || outputs_report_pending()) {
        sei();
        return;
    }
    sleep_enable();
    /* SEI takes effect after the next instruction, so no interrupt can slip in between the
     * checks above and SLEEP and leave us asleep with work to do. */
    sei();
    sleep_cpu();
    sleep_disable();
}

int main(void)
{
    outputs_init();
    uart_init();
    clock_init();
    set_sleep_mode(SLEEP_MODE_IDLE);
    sei();
    reply_hello();
    /* If the firmware ever hangs, the watchdog restarts it, and a restart drives every output
     * LOW: a hung board must not leave a laser or a valve on. The loop wakes at least every
     * 32.8 ms, far inside the timeout. */
    wdt_enable(WDTO_250MS);

    static line_t line;
    for (;;) {
        wdt_reset();
        outputs_report();
        latency_poll();
        /* Sending may wait for the transmit ring here, but edges are made by the timer
         * interrupt, so a slow host never delays them. */
        if (read_line(&line)) {
            handle(&line);
            line.length = 0;
            line.too_long = false;
            line.damaged = false;
            continue;
        }
        idle();
    }
}
