/*
 * outputs.h - the output channels and the board-timed pulses and patterns on them.
 *
 * The edges of a PULSE or PATTERN are made in the timer's compare interrupt, at times computed
 * from the first edge: their timing depends neither on the host nor on what the main loop is
 * doing (parsing a line, sending a reply), and a long pattern does not drift.
 */
#ifndef STIMULUS_OUTPUTS_H
#define STIMULUS_OUTPUTS_H

#include <stdbool.h>
#include <stdint.h>

/* All channels become outputs driven LOW. */
void outputs_init(void);

/* Drive a channel HIGH or LOW until told otherwise, ending (CANCEL) any PULSE or PATTERN on it.
 * Returns the board time of the edge. */
uint32_t outputs_set(uint8_t channel, bool high);

/* Start a PULSE (count 1) or PATTERN: HIGH now for on_us, LOW for off_us, `count` times
 * (0 = until stopped). Ends (CANCEL) whatever ran on the channel. Returns the first edge's time. */
uint32_t outputs_start(uint8_t channel, uint32_t id, uint32_t on_us, uint32_t off_us,
                       uint16_t count);

/* All channels LOW, every PULSE and PATTERN ended (CANCEL). Returns the board time. */
uint32_t outputs_reset_all(void);

/* Send DONE / CANCEL for the PULSEs and PATTERNs that ended since the last call, in order
 * (main loop only, interrupts on). */
void outputs_report(void);

/* True when outputs_report() has something to send (call with interrupts disabled). */
bool outputs_report_pending(void);

/* The latency test's flash: `channel` goes HIGH at board time `start_us` (made by the timer
 * interrupt, like a PULSE's edges) and LOW `on_us` later, without DONE or CANCEL lines. Ends
 * whatever ran on the channel. One flash at a time: a new one replaces the last. */
void outputs_flash_at(uint8_t channel, uint32_t start_us, uint32_t on_us);

typedef enum {
    FLASH_NONE,    /* no flash: none scheduled, or cut short (outputs_set, _start, _reset_all) */
    FLASH_WAITING, /* scheduled, not on yet */
    FLASH_ON,      /* on since *rise_us */
    FLASH_OVER,    /* was on from *rise_us for its on_us, now off */
} flash_status_t;

/* Where the flash is; *rise_us is the board time of its rising edge (FLASH_ON, FLASH_OVER). */
flash_status_t outputs_flash_status(uint32_t *rise_us);

/* End the flash (its channel LOW) if one is scheduled or on. Returns the board time. */
uint32_t outputs_flash_cancel(void);

#endif
