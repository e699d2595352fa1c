/*
 * replies.h - the lines the board sends to the host (docs/stimulation-protocol.md).
 */
#ifndef STIMULUS_REPLIES_H
#define STIMULUS_REPLIES_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

/* Longest reply line, with its newline: "CANCEL 4294967295 4294967295\n" is 29 bytes. */
#define REPLY_MAX 32

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

#endif
