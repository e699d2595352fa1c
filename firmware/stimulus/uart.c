/*
 * uart.c - USART0 with a 128-byte receive ring and a 512-byte transmit ring.
 */
#include "uart.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/pgmspace.h>
#include <util/atomic.h>
#include <stdlib.h>

#include "clock.h"
#include "config.h"

/* 115200 baud at 16 MHz is 2.1 % fast with U2X (the same setting as the Arduino core and the
 * Uno's USB bridge); setbaud's default tolerance is 2 %. */
#define BAUD SERIAL_BAUD
#define BAUD_TOL 3
#include <util/setbaud.h>

#define RX_SIZE 256 /* power of two, at most 256 (uint8_t indexes): a burst of a dozen commands */

static volatile uint8_t rx_ring[RX_SIZE];
static volatile uint8_t rx_head; /* written by the ISR */
static volatile uint8_t rx_tail; /* written by the main loop */
static volatile uint8_t rx_damage;

/* Arrival times of the '\n' bytes in the receive ring, oldest first: the latency test stamps a
 * command when its line was complete, not when the main loop got to it. A ring of 128 bytes
 * holds at most 64 lines of one character; 16 stamps cover the lines the host may have in
 * flight (it would have to send 16 blank lines in a row to lose one, and then the line's time
 * is read later, by the main loop). */
#define NL_SIZE 16 /* power of two */
static volatile uint32_t nl_times[NL_SIZE];
static volatile uint8_t nl_head; /* written by the ISR */
static volatile uint8_t nl_tail; /* written by the main loop */
static volatile uint8_t nl_lost; /* newlines received while the stamp ring was full */

#define TX_SIZE 512 /* power of two; room for every reply one command and its edges can cause */

static volatile uint8_t tx_ring[TX_SIZE];
static volatile uint16_t tx_head; /* written by the main loop */
static volatile uint16_t tx_tail; /* written by the ISR */

/* 16-bit indices are read in two instructions: read the ISR's one with interrupts off. */
static uint16_t tx_tail_now(void)
{
    uint16_t tail;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        tail = tx_tail;
    }
    return tail;
}

void uart_init(void)
{
    /* Frame format and speed doubling before the rate: the hardware does not mind the order,
     * but simavr works out its byte time when UBRR0L is written, from U2X0 at that moment
     * (written after, the simulated line ran at half speed). */
#if USE_2X
    UCSR0A = _BV(U2X0);
#else
    UCSR0A = 0;
#endif
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00); /* 8 data bits, no parity, 1 stop bit */
    UBRR0H = UBRRH_VALUE;
    UBRR0L = UBRRL_VALUE;
    UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
}

ISR(USART_RX_vect)
{
    uint8_t status = UCSR0A;
    uint8_t byte = UDR0;
    if (status & (_BV(FE0) | _BV(DOR0))) {
        rx_damage = 1;
    }
    uint8_t next = (uint8_t)((rx_head + 1) & (RX_SIZE - 1));
    if (next == rx_tail) {
        rx_damage = 1; /* ring full: the host sent faster than lines are handled */
        return;
    }
    rx_ring[rx_head] = byte;
    rx_head = next;
    if (byte == '\n') {
        uint8_t nl_next = (uint8_t)((nl_head + 1) & (NL_SIZE - 1));
        if (nl_lost || nl_next == nl_tail) {
            /* Once one is lost, none is stamped until the main loop has taken every stamp
             * and every unstamped line: stamps and lines stay matched one to one. */
            nl_lost++;
        } else {
            nl_times[nl_head] = clock_micros(); /* interrupts are off: a consistent read */
            nl_head = nl_next;
        }
    }
}

bool uart_take_line_time(uint32_t *board_us)
{
    bool found = false;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        if (nl_tail != nl_head) { /* stamped lines are older than any unstamped one */
            *board_us = nl_times[nl_tail];
            nl_tail = (uint8_t)((nl_tail + 1) & (NL_SIZE - 1));
            found = true;
        } else if (nl_lost) {
            nl_lost--;
        }
    }
    return found;
}

bool uart_read(uint8_t *byte)
{
    uint8_t tail = rx_tail;
    if (tail == rx_head) {
        return false;
    }
    *byte = rx_ring[tail];
    rx_tail = (uint8_t)((tail + 1) & (RX_SIZE - 1));
    return true;
}

bool uart_rx_pending(void)
{
    return rx_tail != rx_head;
}

bool uart_take_rx_damage(void)
{
    uint8_t sreg = SREG;
    cli();
    bool damaged = rx_damage;
    rx_damage = 0;
    SREG = sreg;
    return damaged;
}

ISR(USART_UDRE_vect)
{
    uint16_t tail = tx_tail;
    if (tail == tx_head) {
        UCSR0B &= (uint8_t)~_BV(UDRIE0);
        return;
    }
    UDR0 = tx_ring[tail];
    tx_tail = (uint16_t)((tail + 1) & (TX_SIZE - 1));
}

uint16_t uart_tx_free(void)
{
    return (uint16_t)(TX_SIZE - 1 - ((tx_head - tx_tail_now()) & (TX_SIZE - 1)));
}

void uart_write_byte(uint8_t byte)
{
    uint16_t next = (uint16_t)((tx_head + 1) & (TX_SIZE - 1));
    while (next == tx_tail_now()) {
        /* Full: the transmit interrupt frees a byte every 87 us. With interrupts off it never
         * would; nothing sends with interrupts off, and this guard trades a lost byte for a
         * hang should that ever change. */
        if (!(SREG & _BV(SREG_I))) {
            return;
        }
    }
    tx_ring[tx_head] = byte;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        tx_head = next; /* the ISR reads it */
        UCSR0B |= _BV(UDRIE0);
    }
}

void uart_write(const char *text)
{
    while (*text) {
        uart_write_byte((uint8_t)*text++);
    }
}

void uart_write_P(const char *text)
{
    char c;
    while ((c = (char)pgm_read_byte(text++)) != 0) {
        uart_write_byte((uint8_t)c);
    }
}

void uart_write_u32(uint32_t value)
{
    char digits[11];
    ultoa(value, digits, 10);
    uart_write(digits);
}
