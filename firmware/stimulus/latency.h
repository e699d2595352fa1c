/*
 * latency.h - the latency self-test: the board flashes an LED in front of the host's camera at
 * random times and measures, on its own clock, how long the host takes to answer each flash.
 *
 * "<id> LATENCY <ch> <min_ms> <max_ms> <on_ms> [<count> [<seed>]]" starts it. Each flash waits
 * a random time in [min, max] (counted from the end of the previous flash or from its answer,
 * whichever is later), switches the channel on for on_ms, and stamps the rising edge. The first
 * command line completed after that edge (PING, HELLO, SEEN, or ON / OFF / PULSE / PATTERN on
 * another channel) is its answer, stamped when its '\n' arrived: the board sends
 * "LAT <n> <t_on> <t_cmd>" before that command's own reply. A flash unanswered for
 * LATENCY_WINDOW_US gives "MISS <n> <t_on>". After <count> flashes (0 = until stopped) the test
 * sends "DONE <id> <t>"; STOP, RESET, another LATENCY or a command on its channel end it with
 * "CANCEL <id> <t>". docs/stimulation-protocol.md has the whole story.
 */
#ifndef STIMULUS_LATENCY_H
#define STIMULUS_LATENCY_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

/* How long a flash waits for its answer: far beyond any closed loop's latency. */
#define LATENCY_WINDOW_US 1000000UL

/* Start a test for a parsed LATENCY command (ending, CANCEL, one that runs). Returns the board
 * time for its ACK. */
uint32_t latency_start(const command_t *cmd);

/* End a running test (CANCEL <id> <now>, its channel LOW); nothing when none runs. */
void latency_stop(void);

/* True when `cmd` ends a running test (STOP, RESET, LATENCY, a command on its channel). */
bool latency_ends_test(const command_t *cmd);

/* A command line completed at board time `line_us` is about to be carried out: if it answers
 * the current flash, send its LAT line. */
void latency_on_command(const command_t *cmd, uint32_t line_us);

/* Main loop: follow the flash (missed answers, the next flash, the end of the test). */
void latency_poll(void);

#endif
