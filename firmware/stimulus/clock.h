/*
 * clock.h - the board's microsecond clock (Timer1) and one alarm at a chosen time.
 */
#ifndef STIMULUS_CLOCK_H
#define STIMULUS_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

/* Start Timer1 as a free-running microsecond clock; interrupts must be enabled afterwards. */
void clock_init(void);

/* Microseconds since clock_init(), wrapping at 2^32 (about 71.6 minutes). */
uint32_t clock_micros(void);

/*
 * With interrupts disabled: have the TIMER1_COMPA interrupt (defined by the alarm's user,
 * outputs.c) run at `deadline`, a clock_micros() value less than 2^31 us ahead. When the
 * deadline is more than one timer period away the interrupt comes earlier, and
 * `*exact` is false: the interrupt should find nothing due and set the alarm again.
 * Returns false, arming nothing, when the deadline has already come: the caller handles it.
 */
bool clock_set_alarm(uint32_t deadline, bool *exact);

/* With interrupts disabled: no more alarm. */
void clock_cancel_alarm(void);

/* True when `time` is at or after `deadline` (both clock_micros() values, less than 2^31 apart). */
static inline bool clock_reached(uint32_t time, uint32_t deadline)
{
    return (int32_t)(time - deadline) >= 0;
}

#endif
