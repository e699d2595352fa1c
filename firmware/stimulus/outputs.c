/*
 * outputs.c - channel n is Arduino pin D(n + 2): D2..D7 are PD2..PD7, D8..D13 are PB0..PB5.
 *
 * The channel table is shared by the main loop (commands) and the timer's compare interrupt
 * (the edges of PULSEs and PATTERNs); the main loop changes it only with interrupts disabled,
 * and keeps those stretches short. Neither side sends bytes while interrupts are off: the ends
 * of PULSEs and PATTERNs are queued, and the main loop reports them (DONE, CANCEL).
 *
 * Scheduling: every timed channel knows the planned time of its next edge. The alarm (Timer1
 * compare A) is set for the soonest of them, with the port bits of every channel due at that
 * very time prepared beforehand, so that the interrupt makes those edges first thing. Edges
 * found already due (two channels a few microseconds apart, or a board that cannot keep up)
 * are made at once, a few rounds at most; then the alarm is set a little later, so that the
 * main loop always gets its turn (a board overloaded by very short phases on many channels
 * makes late edges, never a hang or a watchdog restart).
 */
#include "outputs.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "clock.h"
#include "config.h"
#include "replies.h"

typedef struct {
    bool high;        /* level the PULSE or PATTERN drives now */
    bool forever;     /* PATTERN with count 0 */
    uint16_t on_left; /* on-phases still to start after the current one */
    uint32_t id;      /* command that started it, for DONE and CANCEL */
    uint32_t next_us; /* planned time of the next edge */
    uint32_t on_us;
    uint32_t off_us;
} channel_t;

/* Edges to make at once, as port bits to set and to clear, and the channels they belong to. */
typedef struct {
    uint16_t channels; /* bit n: channel n; 0 = nothing */
    uint8_t set_b, clear_b, set_d, clear_d;
} edge_set_t;

typedef struct {
    bool cancelled; /* CANCEL, else DONE */
    uint32_t id;
    uint32_t time_us;
} ended_t;

/* Power of two; between two reports each channel can end twice at most (a DONE, then the
 * CANCEL of the command started after it), so 2 * CHANNEL_COUNT entries never fill it. */
#define ENDED_SIZE 32

/* Rounds of already-due edges one call makes before leaving the CPU to the main loop, and for
 * how long it leaves it. A round costs some 35 us, so a whole interrupt stays well within the
 * time the UART's two-byte receive buffer covers (174 us at 115200 baud). */
#define MAX_LATE_ROUNDS 2
#define CATCH_UP_US 50

/* Port bits of each channel: one of the two is zero. */
static const uint8_t port_d_bits[CHANNEL_COUNT] = {
    _BV(PD2), _BV(PD3), _BV(PD4), _BV(PD5), _BV(PD6), _BV(PD7), 0, 0, 0, 0, 0, 0,
};
static const uint8_t port_b_bits[CHANNEL_COUNT] = {
    0, 0, 0, 0, 0, 0, _BV(PB0), _BV(PB1), _BV(PB2), _BV(PB3), _BV(PB4), _BV(PB5),
};

static channel_t channels[CHANNEL_COUNT];
static uint16_t timed_mask; /* bit n: a PULSE or PATTERN owns channel n */
static edge_set_t armed;    /* the edges the armed alarm makes */
static ended_t ended[ENDED_SIZE];
static volatile uint8_t ended_head; /* advanced with interrupts off */
static volatile uint8_t ended_tail; /* advanced by the main loop */

/* The latency test's flash (at most one): a one-pulse schedule on flash_channel that reports
 * its edges here instead of DONE / CANCEL. Changed with interrupts off only. */
static uint16_t flash_mask; /* bit of the flash's channel while it is scheduled or on */
static uint8_t flash_channel;
static volatile flash_status_t flash_status = FLASH_NONE;
static volatile uint32_t flash_rise_us;
static volatile bool flash_news; /* an edge of the flash since the main loop last looked */

/* Interrupts off. */
static void queue_end(bool cancelled, uint32_t id, uint32_t time_us)
{
    uint8_t next = (uint8_t)((ended_head + 1) & (ENDED_SIZE - 1));
    if (next != ended_tail) { /* cannot be full (see ENDED_SIZE) */
        ended[ended_head] = (ended_t){cancelled, id, time_us};
        ended_head = next;
    }
}

/* Interrupts off. Write the edges; return the board time right after. */
static uint32_t make_edges(const edge_set_t *edges)
{
    PORTD = (uint8_t)((PORTD & (uint8_t)~edges->clear_d) | edges->set_d);
    PORTB = (uint8_t)((PORTB & (uint8_t)~edges->clear_b) | edges->set_b);
    return clock_micros();
}

/* Add the next edge of `channel` (its level flips) to `edges`. */
static void add_edge(edge_set_t *edges, uint8_t channel)
{
    if (channels[channel].high) {
        edges->clear_b |= port_b_bits[channel];
        edges->clear_d |= port_d_bits[channel];
    } else {
        edges->set_b |= port_b_bits[channel];
        edges->set_d |= port_d_bits[channel];
    }
}

/* Interrupts off. Book the edges just made on `channels_mask` at `made_us`: plan each
 * channel's next edge, or end its PULSE or PATTERN (DONE) after its last falling edge.
 * The loops over channels stop at the highest one in the mask: the interrupt's time matters. */
static void advance(uint16_t channels_mask, uint32_t made_us)
{
    uint16_t bit = 1;
    for (uint8_t channel = 0; channels_mask >= bit && bit != 0; channel++, bit <<= 1) {
        if (!(channels_mask & bit)) {
            continue;
        }
        channel_t *state = &channels[channel];
        bool high = !state->high;
        bool is_flash = flash_mask & bit;
        if (is_flash) {
            flash_news = true;
            if (high) {
                flash_status = FLASH_ON;
                flash_rise_us = made_us;
            } else {
                flash_status = FLASH_OVER;
                flash_mask = 0;
            }
        }
        if (!high && !state->forever && state->on_left == 0) {
            timed_mask &= (uint16_t)~bit;
            if (!is_flash) { /* the latency test reports its flashes itself */
                queue_end(false, state->id, made_us);
            }
            continue;
        }
        if (high && !state->forever) {
            state->on_left--;
        }
        state->high = high;
        /* From the planned time, not from when the edge was made: a long pattern does not
         * drift, and a late edge does not make the following ones late. */
        state->next_us += high ? state->on_us : state->off_us;
    }
}

/* Interrupts off. Into `edges`: the timed channels whose next edge is soonest
 * (`*soonest_us`), or all those already due at `now` (then `*late` is true). Returns false
 * when no channel is timed. */
static bool soonest_edges(uint32_t now, edge_set_t *edges, uint32_t *soonest_us, bool *late)
{
    *edges = (edge_set_t){.channels = 0};
    int32_t best = 0;
    uint16_t timed = timed_mask;
    uint16_t bit = 1;
    for (uint8_t channel = 0; timed >= bit && bit != 0; channel++, bit <<= 1) {
        if (!(timed & bit)) {
            continue;
        }
        int32_t ahead = (int32_t)(channels[channel].next_us - now);
        if (ahead < 0) {
            ahead = 0; /* every due channel counts as "now": make them all in one go */
        }
        if (edges->channels == 0 || ahead < best) {
            *edges = (edge_set_t){.channels = bit};
            best = ahead;
            *soonest_us = channels[channel].next_us;
        } else if (ahead != best) {
            continue;
        }
        edges->channels |= bit;
        add_edge(edges, channel);
    }
    *late = best == 0;
    return edges->channels != 0;
}

/* Interrupts off. Make the edges already due (a few rounds at most), then arm the alarm for
 * the next ones. */
static void run_schedule(void)
{
    armed.channels = 0;
    for (uint8_t round = 0;; round++) {
        edge_set_t edges;
        uint32_t soonest_us = 0;
        bool late;
        if (!soonest_edges(clock_micros(), &edges, &soonest_us, &late)) {
            clock_cancel_alarm();
            return;
        }
        bool exact;
        if (!late) {
            if (clock_set_alarm(soonest_us, &exact)) {
                if (exact) {
                    armed = edges;
                }
                return;
            }
            /* The deadline passed while the alarm was being set: these edges are due now. */
        }
        if (round == MAX_LATE_ROUNDS) {
            /* Behind schedule: leave the main loop its turn, then catch up. */
            clock_set_alarm(clock_micros() + CATCH_UP_US, &exact);
            return;
        }
        advance(edges.channels, make_edges(&edges));
    }
}

/* The alarm: make the armed edges before anything else, so that their timing depends only on
 * the interrupt's entry (a few microseconds, the same every time), then the bookkeeping. */
ISR(TIMER1_COMPA_vect)
{
    if (armed.channels) {
        PORTD = (uint8_t)((PORTD & (uint8_t)~armed.clear_d) | armed.set_d);
        PORTB = (uint8_t)((PORTB & (uint8_t)~armed.clear_b) | armed.set_b);
        advance(armed.channels, clock_micros());
    }
    clock_cancel_alarm();
    run_schedule();
}

void outputs_init(void)
{
    /* LOW before OUTPUT: the pins go from floating straight to a driven LOW, never HIGH. */
    PORTD &= (uint8_t)~0xFC;
    PORTB &= (uint8_t)~0x3F;
    DDRD |= 0xFC;
    DDRB |= 0x3F;
}

/* Interrupts off. Drive one pin; return the board time right after. */
static uint32_t drive(uint8_t channel, bool high)
{
    edge_set_t edges = {.channels = 0};
    if (high) {
        edges.set_b = port_b_bits[channel];
        edges.set_d = port_d_bits[channel];
    } else {
        edges.clear_b = port_b_bits[channel];
        edges.clear_d = port_d_bits[channel];
    }
    return make_edges(&edges);
}

/* Interrupts off. A running PULSE, PATTERN or flash on the channel is over. */
static void cancel(uint8_t channel, uint32_t now)
{
    uint16_t bit = (uint16_t)(1U << channel);
    if (flash_mask & bit) {
        flash_mask = 0;
        flash_status = FLASH_NONE;
        flash_news = true;
        timed_mask &= (uint16_t)~bit;
        return; /* the latency test reports its own end */
    }
    if (timed_mask & bit) {
        timed_mask &= (uint16_t)~bit;
        queue_end(true, channels[channel].id, now);
    }
}

uint32_t outputs_set(uint8_t channel, bool high)
{
    uint32_t now;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        run_schedule(); /* due edges first: a PULSE that just ended reads DONE, not CANCEL */
        now = drive(channel, high);
        cancel(channel, now);
        run_schedule();
    }
    return now;
}

uint32_t outputs_start(uint8_t channel, uint32_t id, uint32_t on_us, uint32_t off_us,
                       uint16_t count)
{
    uint32_t now;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        run_schedule(); /* due edges first: a PULSE that just ended reads DONE, not CANCEL */
        now = drive(channel, true);
        cancel(channel, now);
        channel_t *state = &channels[channel];
        state->high = true;
        state->forever = count == 0;
        state->on_left = count == 0 ? 0 : (uint16_t)(count - 1);
        state->id = id;
        state->on_us = on_us;
        state->off_us = off_us;
        state->next_us = now + on_us;
        timed_mask |= (uint16_t)(1U << channel);
        run_schedule();
    }
    return now;
}

uint32_t outputs_reset_all(void)
{
    uint32_t now;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        /* Every pin at once, then the bookkeeping: the outputs matter more than the replies. */
        PORTD &= (uint8_t)~0xFC;
        PORTB &= (uint8_t)~0x3F;
        now = clock_micros();
        for (uint8_t channel = 0; channel < CHANNEL_COUNT; channel++) {
            cancel(channel, now);
        }
        armed.channels = 0;
        clock_cancel_alarm();
    }
    return now;
}

void outputs_flash_at(uint8_t channel, uint32_t start_us, uint32_t on_us)
{
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        run_schedule();
        uint32_t now = clock_micros();
        if (flash_mask) {
            cancel(flash_channel, now);
            drive(flash_channel, false);
        }
        cancel(channel, now);
        drive(channel, false);
        channel_t *state = &channels[channel];
        /* A one-pulse schedule that starts LOW: its first edge, at start_us, rises. */
        *state = (channel_t){.high = false, .forever = false, .on_left = 1, .id = 0,
                             .next_us = start_us, .on_us = on_us, .off_us = on_us};
        flash_channel = channel;
        flash_mask = (uint16_t)(1U << channel);
        flash_status = FLASH_WAITING;
        flash_news = false;
        timed_mask |= flash_mask;
        run_schedule();
    }
}

flash_status_t outputs_flash_status(uint32_t *rise_us)
{
    flash_status_t status;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        status = flash_status;
        *rise_us = flash_rise_us;
        flash_news = false;
    }
    return status;
}

uint32_t outputs_flash_cancel(void)
{
    uint32_t now;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        now = clock_micros();
        if (flash_mask) {
            now = drive(flash_channel, false);
            cancel(flash_channel, now);
            run_schedule(); /* disarm the alarm that would have made the flash's next edge */
        }
        flash_status = FLASH_NONE;
        flash_news = false;
    }
    return now;
}

bool outputs_report_pending(void)
{
    return ended_head != ended_tail || flash_news;
}

void outputs_report(void)
{
    for (;;) {
        ended_t item;
        ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
        {
            if (ended_head == ended_tail) {
                return;
            }
            item = ended[ended_tail];
            ended_tail = (uint8_t)((ended_tail + 1) & (ENDED_SIZE - 1));
        }
        if (item.cancelled) {
            reply_cancel(item.id, item.time_us);
        } else {
            reply_done(item.id, item.time_us);
        }
    }
}
