/*
 * replies.h - the lines the board sends to the host (docs/stimulation-protocol.md).
 */
#ifndef STIMULUS_REPLIES_H
#define STIMULUS_REPLIES_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

/* Longest reply line, with its newline: "LAT 4294967295 4294967295 4294967295\n" is 37 bytes. */
#define REPLY_MAX 40

/* "HELLO <firmware> <version> <channels>" */
void reply_hello(void);
/* "ACK <id> <board_time_us>" */
void reply_ack(uint32_t id, uint32_t board_time_us);
/* "ERR <id> <CODE>", or "ERR ? <CODE>" when the line had no readable id. */
void reply_error(bool has_id, uint32_t id, parse_status_t status);
/* "DONE <id> <board_time_us>": a PULSE or PATTERN ended by itself (its last falling edge). */
void reply_done(uint32_t id, uint32_t board_time_us);
/* "CANCEL <id> <board_time_us>": a PULSE or PATTERN was cut short by a later command. */
void reply_cancel(uint32_t id, uint32_t board_time_us);

/* "LAT <n> <t_on> <t_cmd>": flash n of the latency test rose at t_on; its answer's line was
 * complete at t_cmd. */
void reply_latency(uint32_t flash, uint32_t on_us, uint32_t command_us);
/* "MISS <n> <t_on>": flash n got no answer within LATENCY_WINDOW_US. */
void reply_miss(uint32_t flash, uint32_t on_us);

#endif
