/*
 * config.h - what this firmware calls itself and the board it runs on.
 *
 * The channel -> pin table lives in outputs.c; docs/arduino.md shows it with a wiring picture.
 */
#ifndef STIMULUS_CONFIG_H
#define STIMULUS_CONFIG_H

/* Sent in the HELLO banner; the host checks the name and reports the version. */
#define FIRMWARE_NAME "stimulus"
#define FIRMWARE_VERSION "1.1.0"

/* Channel n drives Arduino pin D(n + 2): D2..D13. D0/D1 carry the serial line. */
#define CHANNEL_COUNT 12

#define SERIAL_BAUD 115200UL

/* Longest command line kept, without its newline; longer lines get ERR ... LINE_TOO_LONG. */
#define LINE_MAX 64

/* Durations are whole microseconds on the board: 0.1 ms .. 2000 s. The top stays below 2^31 us,
 * so that deadline comparisons by signed difference stay valid across the 32-bit wrap; the
 * bottom is about what one timer interrupt costs (some 60 us with twelve channels timed), so
 * a phase is never shorter than the work of making its edge. */
#define DURATION_MIN_US 100UL
#define DURATION_MAX_US 2000000000UL

/* PATTERN counts: 1..65535 on-phases, or 0 for "until OFF, ON, RESET or another timed command". */
#define PATTERN_COUNT_MAX 65535UL

#ifndef F_CPU
#define F_CPU 16000000UL
#endif

#endif
