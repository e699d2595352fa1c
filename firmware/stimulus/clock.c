/*
 * clock.c - Timer1 as the board's microsecond clock, and its compare unit A as an alarm.
 *
 * Timer1 counts at F_CPU / 8 (0.5 us per tick at 16 MHz, 1 us at 8 MHz) and its overflow
 * interrupt adds one timer period to a 32-bit microsecond count. The compare interrupt belongs
 * to the alarm's user (outputs.c), so that it can make its edges first thing. Timer0 is left
 * alone, so the Arduino core (when built in the Arduino IDE) keeps its millis().
 */
#include "clock.h"

#include <avr/interrupt.h>
#include <avr/io.h>

#include "config.h"

#if F_CPU == 16000000UL
#define TICKS_PER_US 2
#define PERIOD_US 32768UL /* 65536 ticks */
#elif F_CPU == 8000000UL
#define TICKS_PER_US 1
#define PERIOD_US 65536UL
#else
#error "clock.c supports F_CPU of 16 MHz (Uno, Nano) or 8 MHz (3.3 V Pro Mini) only"
#endif

/* Alarms further away than this wake the handler half a period ahead instead. */
#define ALARM_RANGE_US (PERIOD_US - 2048)

/* Microseconds at the last overflow: always a multiple of PERIOD_US (mod 2^32). */
static volatile uint32_t overflow_us;

ISR(TIMER1_OVF_vect)
{
    overflow_us += PERIOD_US;
}

void clock_init(void)
{
    TCCR1A = 0;         /* normal mode, OC1A/OC1B disconnected: D9/D10 stay plain outputs */
    TCCR1B = _BV(CS11); /* clock / 8 */
    TCNT1 = 0;
    TIFR1 = _BV(TOV1) | _BV(OCF1A);
    TIMSK1 = _BV(TOIE1);
}

/* Caller holds interrupts off. */
static uint32_t micros_locked(void)
{
    uint32_t base = overflow_us;
    uint16_t ticks = TCNT1;
    /* An overflow after interrupts went off is still pending: count it, but only if the tick
     * count was read after it (a small count), not just before it (a count near the top). */
    if ((TIFR1 & _BV(TOV1)) && ticks < 0x8000) {
        base += PERIOD_US;
    }
    return base + ticks / TICKS_PER_US;
}

uint32_t clock_micros(void)
{
    uint8_t sreg = SREG;
    cli();
    uint32_t now = micros_locked();
    SREG = sreg;
    return now;
}

/* Interrupts off. Drop a compare match of an earlier alarm, so that enabling the interrupt
 * does not run it at once. A pending overflow is counted here and cleared with it: simavr 1.6
 * clears every flag of TIFR1 on any write to it, and would lose the overflow (the board's
 * clock would jump back 32.8 ms); on the chip this is only a little early bookkeeping. */
static void clear_compare_flag(void)
{
    uint8_t flags = TIFR1;
    if (!(flags & _BV(OCF1A))) {
        return;
    }
    if (flags & _BV(TOV1)) {
        overflow_us += PERIOD_US;
        TIFR1 = _BV(TOV1) | _BV(OCF1A);
    } else {
        TIFR1 = _BV(OCF1A);
    }
}

bool clock_set_alarm(uint32_t deadline, bool *exact)
{
    uint32_t now = micros_locked();
    if (clock_reached(now, deadline)) {
        return false;
    }
    *exact = (deadline - now) < ALARM_RANGE_US;
    uint32_t target = *exact ? deadline : now + PERIOD_US / 2;
    /* overflow_us is a multiple of the timer period, so a time's tick within the period is
     * just its low bits: no drift, no rounding. */
    OCR1A = (uint16_t)(target * TICKS_PER_US);
    clear_compare_flag();
    TIMSK1 |= _BV(OCIE1A);
    /* If the timer passed the new compare value before it was written (a deadline a few
     * cycles away), no match will come for a whole period: say so, and the caller acts now. */
    if (clock_reached(micros_locked(), target)) {
        TIMSK1 &= (uint8_t)~_BV(OCIE1A);
        return false;
    }
    return true;
}

void clock_cancel_alarm(void)
{
    TIMSK1 &= (uint8_t)~_BV(OCIE1A);
}
