/*
 * uart.h - interrupt-driven USART0 (115200 8N1) with receive and transmit rings.
 *
 * Sending never waits for the line unless the transmit ring is full, so replies do not delay
 * the timing of outputs.
 */
#ifndef STIMULUS_UART_H
#define STIMULUS_UART_H

#include <stdbool.h>
#include <stdint.h>

void uart_init(void);

/* Take one received byte; false when none is waiting. */
bool uart_read(uint8_t *byte);

/* The board time (clock_micros) at which the '\n' just taken by uart_read() was received, stamped
 * in the receive interrupt: when the line was complete, however long the main loop took to get
 * to it. False when that stamp was lost (receive ring overflow). */
bool uart_take_line_time(uint32_t *board_us);

/* True when received bytes are waiting (call with interrupts disabled to decide on sleeping). */
bool uart_rx_pending(void);

/* True once after bytes were lost (receive ring full, overrun or framing error). */
bool uart_take_rx_damage(void);

/* Bytes that can be queued without waiting. */
uint16_t uart_tx_free(void);

void uart_write_byte(uint8_t byte);
void uart_write(const char *text);
/* `text` in program memory (PSTR). */
void uart_write_P(const char *text);
void uart_write_u32(uint32_t value);

#endif
