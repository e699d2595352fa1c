/*
 * protocol.c - parsing one command line: "<id> <COMMAND> [arguments...]".
 */
#include "protocol.h"

#include <avr/pgmspace.h>
#include <string.h>

#include "config.h"

#define MAX_TOKENS 9 /* id, command, up to 6 arguments, and one more to detect extras */

static const char name_ok[] PROGMEM = "OK";
static const char name_bad_id[] PROGMEM = "BAD_ID";
static const char name_unknown[] PROGMEM = "UNKNOWN_COMMAND";
static const char name_bad_channel[] PROGMEM = "BAD_CHANNEL";
static const char name_bad_value[] PROGMEM = "BAD_VALUE";
static const char name_missing[] PROGMEM = "MISSING_ARGUMENT";
static const char name_too_many[] PROGMEM = "TOO_MANY_ARGUMENTS";
static const char name_too_long[] PROGMEM = "LINE_TOO_LONG";
static const char name_overflow[] PROGMEM = "RX_OVERFLOW";

static const char *const error_names[ERR_COUNT_] PROGMEM = {
    name_ok,          name_bad_id,   name_unknown,  name_bad_channel, name_bad_value,
    name_missing,     name_too_many, name_too_long, name_overflow,
};

const char *protocol_error_name_P(parse_status_t status)
{
    if (status >= ERR_COUNT_) {
        status = ERR_UNKNOWN_COMMAND;
    }
    return (const char *)pgm_read_word(&error_names[status]);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A whole token of decimal digits, at most `max`; no sign, no overflow. */
static bool parse_uint(const char *text, uint32_t max, uint32_t *value)
{
    if (!is_digit(*text)) {
        return false;
    }
    uint32_t result = 0;
    for (; *text; text++) {
        if (!is_digit(*text)) {
            return false;
        }
        uint8_t digit = (uint8_t)(*text - '0');
        if (digit > max || result > (max - digit) / 10) {
            return false;
        }
        result = result * 10 + digit;
    }
    *value = result;
    return true;
}

/* Milliseconds with up to three decimals ("500", "0.25", "12.125") -> whole microseconds,
 * DURATION_MIN_US .. DURATION_MAX_US. Fixed point, because the AVR has no floating-point hardware and
 * the host's number must arrive exactly. */
static bool parse_duration_ms(const char *text, uint32_t *us)
{
    uint32_t whole = 0;
    const char *dot = strchr(text, '.');
    if (dot == NULL) {
        if (!parse_uint(text, DURATION_MAX_US / 1000, &whole)) {
            return false;
        }
        *us = whole * 1000;
        return *us >= DURATION_MIN_US;
    }
    size_t whole_len = (size_t)(dot - text);
    size_t frac_len = strlen(dot + 1);
    if (whole_len == 0 || whole_len > 7 || frac_len == 0 || frac_len > 3) {
        return false;
    }
    char whole_text[8];
    memcpy(whole_text, text, whole_len);
    whole_text[whole_len] = '\0';
    uint32_t frac = 0;
    if (!parse_uint(whole_text, DURATION_MAX_US / 1000, &whole) ||
        !parse_uint(dot + 1, 999, &frac)) {
        return false;
    }
    for (size_t i = frac_len; i < 3; i++) {
        frac *= 10; /* "0.5" is 500 us, "0.05" is 50 us */
    }
    uint32_t total = whole * 1000 + frac;
    if (total < DURATION_MIN_US || total > DURATION_MAX_US) {
        return false;
    }
    *us = total;
    return true;
}

/* Split on blanks, in place; returns the number of tokens (up to MAX_TOKENS). */
static uint8_t split(char *line, char *tokens[MAX_TOKENS])
{
    uint8_t count = 0;
    char *p = line;
    while (*p) {
        while (is_space(*p)) {
            *p++ = '\0';
        }
        if (!*p) {
            break;
        }
        if (count == MAX_TOKENS) {
            return (uint8_t)(MAX_TOKENS + 1); /* more than we look at: "too many" */
        }
        tokens[count++] = p;
        while (*p && !is_space(*p)) {
            p++;
        }
    }
    return count;
}

static void to_upper(char *text)
{
    for (; *text; text++) {
        if (*text >= 'a' && *text <= 'z') {
            *text = (char)(*text - 'a' + 'A');
        }
    }
}

typedef struct {
    const char *name; /* in program memory */
    command_kind_t kind;
    uint8_t arguments;     /* required */
    uint8_t max_arguments; /* required + optional */
} command_spec_t;

static const char word_ping[] PROGMEM = "PING";
static const char word_hello[] PROGMEM = "HELLO";
static const char word_reset[] PROGMEM = "RESET";
static const char word_on[] PROGMEM = "ON";
static const char word_off[] PROGMEM = "OFF";
static const char word_pulse[] PROGMEM = "PULSE";
static const char word_pattern[] PROGMEM = "PATTERN";
static const char word_latency[] PROGMEM = "LATENCY";
static const char word_seen[] PROGMEM = "SEEN";
static const char word_stop[] PROGMEM = "STOP";

static const command_spec_t specs[] PROGMEM = {
    {word_ping, CMD_PING, 0, 0},       {word_hello, CMD_HELLO, 0, 0},
    {word_reset, CMD_RESET, 0, 0},     {word_on, CMD_ON, 1, 1},
    {word_off, CMD_OFF, 1, 1},         {word_pulse, CMD_PULSE, 2, 2},
    {word_pattern, CMD_PATTERN, 4, 4}, {word_latency, CMD_LATENCY, 4, 6},
    {word_seen, CMD_SEEN, 0, 0},       {word_stop, CMD_STOP, 0, 0},
};

/* LATENCY <ch> <min_ms> <max_ms> <on_ms> [<count> [<seed>]]: the channel is parsed already. */
static parse_status_t parse_latency(char *tokens[MAX_TOKENS], uint8_t given, command_t *cmd)
{
    uint32_t count = 0;
    if (!parse_duration_ms(tokens[3], &cmd->min_us) ||
        !parse_duration_ms(tokens[4], &cmd->max_us) ||
        !parse_duration_ms(tokens[5], &cmd->on_us) || cmd->min_us > cmd->max_us) {
        return ERR_BAD_VALUE;
    }
    if (given >= 5 && !parse_uint(tokens[6], PATTERN_COUNT_MAX, &count)) {
        return ERR_BAD_VALUE;
    }
    cmd->count = (uint16_t)count;
    /* Seed 0 would stop the generator (xorshift stays at 0): 1 .. 4294967295. */
    if (given == 6 && (!parse_uint(tokens[7], UINT32_MAX, &cmd->seed) || cmd->seed == 0)) {
        return ERR_BAD_VALUE;
    }
    return PARSE_OK;
}

bool protocol_leading_id(const char *line, uint32_t *id)
{
    while (is_space(*line)) {
        line++;
    }
    char text[11];
    uint8_t n = 0;
    while (is_digit(*line) && n < sizeof(text) - 1) {
        text[n++] = *line++;
    }
    text[n] = '\0';
    if (n == 0 || !(*line == '\0' || is_space(*line))) {
        return false;
    }
    return parse_uint(text, UINT32_MAX, id);
}

parse_status_t protocol_parse(char *line, command_t *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    char *tokens[MAX_TOKENS];
    uint8_t count = split(line, tokens);
    if (count == 0) {
        cmd->kind = CMD_NONE;
        return PARSE_OK;
    }
    if (count > MAX_TOKENS) {
        /* The id is still worth reporting. */
        cmd->has_id = parse_uint(tokens[0], UINT32_MAX, &cmd->id);
        return cmd->has_id ? ERR_TOO_MANY_ARGUMENTS : ERR_BAD_ID;
    }
    if (!parse_uint(tokens[0], UINT32_MAX, &cmd->id)) {
        return ERR_BAD_ID;
    }
    cmd->has_id = true;
    if (count < 2) {
        return ERR_MISSING_ARGUMENT;
    }
    to_upper(tokens[1]);
    const command_spec_t *found = NULL;
    for (uint8_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        if (strcmp_P(tokens[1], (const char *)pgm_read_word(&specs[i].name)) == 0) {
            found = &specs[i];
            break;
        }
    }
    if (found == NULL) {
        return ERR_UNKNOWN_COMMAND;
    }
    cmd->kind = (command_kind_t)pgm_read_byte(&found->kind);
    uint8_t wanted = pgm_read_byte(&found->arguments);
    uint8_t most = pgm_read_byte(&found->max_arguments);
    uint8_t given = (uint8_t)(count - 2);
    if (given < wanted) {
        return ERR_MISSING_ARGUMENT;
    }
    if (given > most) {
        return ERR_TOO_MANY_ARGUMENTS;
    }
    if (wanted == 0) {
        return PARSE_OK;
    }
    uint32_t channel;
    if (!parse_uint(tokens[2], CHANNEL_COUNT - 1, &channel)) {
        return ERR_BAD_CHANNEL;
    }
    cmd->channel = (uint8_t)channel;
    if (cmd->kind == CMD_LATENCY) {
        return parse_latency(tokens, given, cmd);
    }
    if (cmd->kind == CMD_PULSE) {
        cmd->count = 1;
        return parse_duration_ms(tokens[3], &cmd->on_us) ? PARSE_OK : ERR_BAD_VALUE;
    }
    if (cmd->kind == CMD_PATTERN) {
        uint32_t pattern_count;
        if (!parse_duration_ms(tokens[3], &cmd->on_us) ||
            !parse_duration_ms(tokens[4], &cmd->off_us) ||
            !parse_uint(tokens[5], PATTERN_COUNT_MAX, &pattern_count)) {
            return ERR_BAD_VALUE;
        }
        cmd->count = (uint16_t)pattern_count;
    }
    return PARSE_OK;
}
