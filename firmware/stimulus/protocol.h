/*
 * protocol.h - parsing one command line of the host protocol (docs/stimulation-protocol.md).
 *
 * Parsing has no side effects on the outputs and never fails hard: every line either becomes a
 * command or an error code that the caller reports as "ERR <id> <CODE>".
 */
#ifndef STIMULUS_PROTOCOL_H
#define STIMULUS_PROTOCOL_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    CMD_NONE, /* blank line: ignored, no reply */
    CMD_PING,
    CMD_HELLO,
    CMD_RESET,
    CMD_ON,
    CMD_OFF,
    CMD_PULSE,
    CMD_PATTERN,
    CMD_LATENCY, /* start the latency self-test (latency.c) */
    CMD_SEEN,    /* the host saw something: does nothing but answer (a latency-test response) */
    CMD_STOP,    /* end the latency self-test */
} command_kind_t;

/* The order matches the names in protocol.c. */
typedef enum {
    PARSE_OK = 0,
    ERR_BAD_ID,
    ERR_UNKNOWN_COMMAND,
    ERR_BAD_CHANNEL,
    ERR_BAD_VALUE,
    ERR_MISSING_ARGUMENT,
    ERR_TOO_MANY_ARGUMENTS,
    ERR_LINE_TOO_LONG,
    ERR_RX_OVERFLOW,
    ERR_COUNT_
} parse_status_t;

typedef struct {
    bool has_id; /* false only when the line does not start with a valid id */
    uint32_t id;
    command_kind_t kind;
    uint8_t channel;
    uint32_t on_us;  /* PULSE length, or PATTERN on-phase */
    uint32_t off_us; /* PATTERN off-phase */
    uint16_t count;  /* PATTERN on-phases; 0 = until stopped; PULSE: 1; LATENCY flashes */
    uint32_t min_us; /* LATENCY: shortest wait before a flash */
    uint32_t max_us; /* LATENCY: longest wait before a flash */
    uint32_t seed;   /* LATENCY: random seed; 0 = none given (taken from the clock) */
} command_t;

/*
 * Parse `line` (NUL-terminated, without its newline; modified in place) into `cmd`.
 * `cmd->has_id` and `cmd->id` are filled as soon as the id is read, so errors can name it.
 */
parse_status_t protocol_parse(char *line, command_t *cmd);

/* Only the id of a line, for errors found before parsing (too long, damaged). */
bool protocol_leading_id(const char *line, uint32_t *id);

/* The code word of an error, in program memory (for uart_write_P). */
const char *protocol_error_name_P(parse_status_t status);

#endif
