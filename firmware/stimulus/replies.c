/*
 * replies.c - formatting of the board's reply lines.
 */
#include "replies.h"

#include <avr/pgmspace.h>

#include "config.h"
#include "uart.h"

static void id_and_time(const char *word_P, uint32_t id, uint32_t board_time_us)
{
    uart_write_P(word_P);
    uart_write_u32(id);
    uart_write_byte(' ');
    uart_write_u32(board_time_us);
    uart_write_byte('\n');
}

void reply_hello(void)
{
    uart_write_P(PSTR("HELLO " FIRMWARE_NAME " " FIRMWARE_VERSION " "));
    uart_write_u32(CHANNEL_COUNT);
    uart_write_byte('\n');
}

void reply_ack(uint32_t id, uint32_t board_time_us)
{
    id_and_time(PSTR("ACK "), id, board_time_us);
}

void reply_done(uint32_t id, uint32_t board_time_us)
{
    id_and_time(PSTR("DONE "), id, board_time_us);
}

void reply_cancel(uint32_t id, uint32_t board_time_us)
{
    id_and_time(PSTR("CANCEL "), id, board_time_us);
}

void reply_error(bool has_id, uint32_t id, parse_status_t status)
{
    uart_write_P(PSTR("ERR "));
    if (has_id) {
        uart_write_u32(id);
    } else {
        uart_write_byte('?');
    }
    uart_write_byte(' ');
    uart_write_P(protocol_error_name_P(status));
    uart_write_byte('\n');
}

void reply_latency(uint32_t flash, uint32_t on_us, uint32_t command_us)
{
    uart_write_P(PSTR("LAT "));
    uart_write_u32(flash);
    uart_write_byte(' ');
    uart_write_u32(on_us);
    uart_write_byte(' ');
    uart_write_u32(command_us);
    uart_write_byte('\n');
}

void reply_miss(uint32_t flash, uint32_t on_us)
{
    id_and_time(PSTR("MISS "), flash, on_us);
}
