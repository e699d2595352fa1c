/*
 * simstim.c - run the stimulus firmware on a simulated ATmega328P (simavr) with its serial
 * port on a pseudo-terminal, logging every output pin change with the simulated time.
 *
 *   simstim [--mcu NAME] [--freq HZ] [--pins FILE] [--quit-on-eof] [--wait-open] firmware.elf
 *
 * stdout: "PTY /dev/pts/N" once the pty exists (open it with pyserial like a real board's
 *         port), then, unless --pins names a file, the pin log.
 * pin log: one line per change of an output pin: "PIN PD4 1 500123456 81234567890123" = port
 *          D bit 4 went HIGH at 500123456 ns of simulated time since reset (ns = cycles * 1e9 /
 *          freq), and the host's CLOCK_MONOTONIC read 81234567890123 ns when the simulator made
 *          that change (Python's time.perf_counter_ns() on Linux, cameras.base.host_now_ns):
 *          the simulated camera draws the LED from it. Each line is flushed as it is written.
 *          Arduino D2..D7 are PD2..PD7, D8..D13 are PB0..PB5.
 * --quit-on-eof: exit when stdin reaches end of file, so the harness never outlives a test
 *          process that dies without stopping it.
 * --wait-open: start the firmware only once a program has opened the pty, as an Uno restarts
 *          when its port is opened. Without it the HELLO banner is usually sent before anyone
 *          listens, and pyserial flushes what arrived before it opened the port.
 * SIGINT/SIGTERM end the simulation cleanly.
 *
 * The UART bridge is written here rather than taken from simavr's uart_pty part, whose
 * thread, fixed /tmp/simavr-uart0 symlink and console messages suit interactive use but not
 * several simulations started by tests. Everything runs on the simulator's thread: a cycle
 * timer polls the pty (non-blocking) every BRIDGE_PERIOD_US of simulated time.
 *
 * Board time is locked to the host's CLOCK_MONOTONIC: while the firmware sleeps, the harness
 * sleeps until the host time that corresponds to the simulated time it wakes at (an absolute
 * deadline from one anchor), so simulated and host time advance together without drift; simavr's
 * own sleep (relative usleep of 200 us or more, each oversleeping) let board time fall behind
 * the host clock by several percent, which the latency self-test would see as error. A host
 * stalled for more than RESYNC_NS (descheduled) re-anchors rather than racing to catch up.
 *
 * Links libsimavr (GPL-3.0), so this harness is GPL-3.0 like the simulator; the firmware and
 * the rest of the project do not link it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "avr_extint.h"
#include "avr_ioport.h"
#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_time.h"

/* About one byte time at 115200 baud (87 us), so the bridge never slows the line. */
#define BRIDGE_PERIOD_US 100
#define OUT_SIZE 8192
/* Behind the host clock by more than this: forget the lost time instead of running flat out. */
#define RESYNC_NS 20000000LL

typedef struct {
    avr_t *avr;
    int master;        /* our end of the pty */
    int slave;         /* kept open: without it the master reads EIO whenever the host closes */
    avr_irq_t *to_avr; /* UART input */
    int xon;           /* the UART has room for more input */
    uint8_t in[256];   /* read from the pty, not yet given to the UART */
    size_t in_len, in_done;
    uint8_t out[OUT_SIZE]; /* from the UART, not yet written to the pty */
    size_t out_len;
    unsigned long dropped; /* output bytes lost because nobody read the pty */
} bridge_t;

typedef struct {
    avr_t *avr;
    FILE *log;
    char port;
    uint8_t bit;
    int level; /* -1 until the first report */
} pin_watch_t;

/* The host time (CLOCK_MONOTONIC ns) that corresponds to simulated time 0. */
static int64_t anchor_host_ns;

static volatile sig_atomic_t stop_requested;
static int quit_on_eof;
static int wait_open;

static void on_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
}

/* simavr's messages go to stderr, warnings and errors only: stdout is for PTY and PIN lines. */
static void quiet_logger(avr_t *avr, const int level, const char *format, va_list ap)
{
    (void)avr;
    if (level <= LOG_WARNING) {
        vfprintf(stderr, format, ap);
    }
}

static int64_t host_now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static int64_t sim_ns(avr_t *avr, avr_cycle_count_t cycle)
{
    return (int64_t)avr_cycles_to_nsec(avr, cycle);
}

/* From now on, simulated time `cycle` is the host's present. */
static void anchor_clock(avr_t *avr)
{
    anchor_host_ns = host_now_ns() - sim_ns(avr, avr->cycle);
}

/* The firmware sleeps for `how_long` cycles (simavr then adds them to avr->cycle): wait until
 * the host time of the simulated time it wakes at. */
static void locked_sleep(avr_t *avr, avr_cycle_count_t how_long)
{
    int64_t wake_ns = anchor_host_ns + sim_ns(avr, avr->cycle + how_long);
    int64_t now_ns = host_now_ns();
    if (now_ns - wake_ns > RESYNC_NS) {
        anchor_host_ns += now_ns - wake_ns;
        return;
    }
    if (wake_ns <= now_ns) {
        return; /* behind: run on until the simulation has caught up */
    }
    struct timespec until = {.tv_sec = wake_ns / 1000000000LL, .tv_nsec = wake_ns % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
        if (stop_requested) {
            return;
        }
    }
}

static void usage(FILE *to)
{
    fprintf(to, "usage: simstim [--mcu NAME] [--freq HZ] [--pins FILE] [--quit-on-eof] "
                "[--wait-open] firmware.elf\n");
}

/* The pty is raw both ways: no echo (the firmware would read its own replies back), no
 * newline translation, no signals from special characters. */
static int open_pty(bridge_t *bridge, char *name, size_t name_size)
{
    char path[128];
    if (openpty(&bridge->master, &bridge->slave, path, NULL, NULL) != 0) {
        fprintf(stderr, "simstim: cannot create a pseudo-terminal: %s\n", strerror(errno));
        return -1;
    }
    struct termios tio;
    tcgetattr(bridge->slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(bridge->slave, TCSANOW, &tio);
    fcntl(bridge->master, F_SETFL, fcntl(bridge->master, F_GETFL) | O_NONBLOCK);
    snprintf(name, name_size, "%s", path);
    return 0;
}

static void flush_out(bridge_t *bridge)
{
    if (bridge->out_len == 0) {
        return;
    }
    ssize_t written = write(bridge->master, bridge->out, bridge->out_len);
    if (written > 0) {
        memmove(bridge->out, bridge->out + written, bridge->out_len - (size_t)written);
        bridge->out_len -= (size_t)written;
    }
}

/* A byte the firmware sent. */
static void uart_output_hook(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    bridge_t *bridge = param;
    if (bridge->out_len == OUT_SIZE) {
        flush_out(bridge);
    }
    if (bridge->out_len == OUT_SIZE) {
        bridge->dropped++; /* the pty is full and nobody reads it: like a real unread port */
        return;
    }
    bridge->out[bridge->out_len++] = (uint8_t)value;
    flush_out(bridge);
}

static void xon_hook(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)value;
    ((bridge_t *)param)->xon = 1;
}

static void xoff_hook(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)value;
    ((bridge_t *)param)->xon = 0;
}

static void check_stdin(void)
{
    struct pollfd fd = {.fd = STDIN_FILENO, .events = POLLIN};
    if (poll(&fd, 1, 0) > 0) {
        char buffer[64];
        if (read(STDIN_FILENO, buffer, sizeof(buffer)) <= 0) {
            stop_requested = 1;
        }
    }
}

/* Until a program opens the pty: the master reports POLLHUP while no one holds the slave
 * side, so ours is closed meanwhile, and opened again (by name) once someone else has it, to
 * keep the master readable when that program closes the port. */
static int wait_for_open(bridge_t *bridge, const char *name)
{
    close(bridge->slave);
    for (;;) {
        if (stop_requested) {
            return -1;
        }
        if (quit_on_eof) {
            check_stdin();
        }
        struct pollfd fd = {.fd = bridge->master, .events = POLLIN};
        if (poll(&fd, 1, 20) >= 0 && !(fd.revents & POLLHUP)) {
            break;
        }
    }
    bridge->slave = open(name, O_RDWR | O_NOCTTY);
    if (bridge->slave < 0) {
        fprintf(stderr, "simstim: cannot open %s again: %s\n", name, strerror(errno));
        return -1;
    }
    /* pyserial configures the port and flushes its input right after opening it. */
    usleep(50000);
    return 0;
}

static avr_cycle_count_t bridge_poll(avr_t *avr, avr_cycle_count_t when, void *param)
{
    bridge_t *bridge = param;
    if (bridge->in_done == bridge->in_len) {
        ssize_t got = read(bridge->master, bridge->in, sizeof(bridge->in));
        bridge->in_len = got > 0 ? (size_t)got : 0;
        bridge->in_done = 0;
    }
    /* Feed the UART while it has room; it paces bytes to the firmware at the baud rate. */
    while (bridge->xon && bridge->in_done < bridge->in_len) {
        avr_raise_irq(bridge->to_avr, bridge->in[bridge->in_done++]);
    }
    flush_out(bridge);
    if (quit_on_eof) {
        check_stdin();
    }
    return when + avr_usec_to_cycles(avr, BRIDGE_PERIOD_US);
}

static void pin_hook(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    pin_watch_t *pin = param;
    int level = value ? 1 : 0;
    if (level == pin->level) {
        return;
    }
    pin->level = level;
    fprintf(pin->log, "PIN P%c%u %d %" PRIu64 " %" PRId64 "\n", pin->port, pin->bit, level,
            (uint64_t)avr_cycles_to_nsec(pin->avr, pin->avr->cycle), host_now_ns());
    fflush(pin->log);
}

int main(int argc, char **argv)
{
    const char *mcu = "atmega328p";
    unsigned long freq = 16000000UL;
    const char *pins_path = NULL;
    const char *elf_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mcu") && i + 1 < argc) {
            mcu = argv[++i];
        } else if (!strcmp(argv[i], "--freq") && i + 1 < argc) {
            freq = strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--pins") && i + 1 < argc) {
            pins_path = argv[++i];
        } else if (!strcmp(argv[i], "--quit-on-eof")) {
            quit_on_eof = 1;
        } else if (!strcmp(argv[i], "--wait-open")) {
            wait_open = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && elf_path == NULL) {
            elf_path = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (elf_path == NULL) {
        usage(stderr);
        return 2;
    }
    if (access(elf_path, R_OK) != 0) {
        fprintf(stderr, "simstim: cannot read firmware %s: %s (build it with make -C firmware)\n",
                elf_path, strerror(errno));
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction action = {.sa_handler = on_signal};
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    avr_global_logger_set(quiet_logger);
    static elf_firmware_t firmware;
    if (elf_read_firmware(elf_path, &firmware) != 0) {
        fprintf(stderr, "simstim: %s is not a readable AVR ELF file\n", elf_path);
        return 2;
    }
    /* The firmware does not embed simavr's .mmcu section (it is meant for real boards), so
     * the part and clock come from the command line. */
    snprintf(firmware.mmcu, sizeof(firmware.mmcu), "%s", mcu);
    firmware.frequency = (uint32_t)freq;

    avr_t *avr = avr_make_mcu_by_name(firmware.mmcu);
    if (avr == NULL) {
        fprintf(stderr, "simstim: simavr does not know the part %s\n", firmware.mmcu);
        return 2;
    }
    avr_init(avr);
    avr_load_firmware(avr, &firmware);
    /* INT0/INT1 sit on D2/D3, outputs the firmware drives LOW. With simavr's default strict
     * level triggering the external-interrupt module polls a low pin on every cycle (even with
     * the interrupt disabled), so the simulator never sleeps longer than one cycle and ran at
     * about a third of real time. The firmware uses no external interrupt. */
    for (uint8_t extint = 0; extint < 2; extint++) {
        avr_extint_set_strict_lvl_trig(avr, extint, 0);
    }
    avr->log = LOG_WARNING;

    FILE *log = stdout;
    if (pins_path != NULL) {
        log = fopen(pins_path, "w");
        if (log == NULL) {
            fprintf(stderr, "simstim: cannot write the pin log %s: %s\n", pins_path,
                    strerror(errno));
            return 2;
        }
    }
    static pin_watch_t watches[3 * 8];
    const char ports[] = {'B', 'C', 'D'};
    for (int p = 0; p < 3; p++) {
        for (uint8_t bit = 0; bit < 8; bit++) {
            pin_watch_t *watch = &watches[p * 8 + bit];
            *watch = (pin_watch_t){.avr = avr, .log = log, .port = ports[p], .bit = bit,
                                   .level = 0};
            avr_irq_t *irq = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(ports[p]), bit);
            if (irq != NULL) {
                avr_irq_register_notify(irq, pin_hook, watch);
            }
        }
    }

    static bridge_t bridge;
    char pty_name[128];
    bridge.avr = avr;
    if (open_pty(&bridge, pty_name, sizeof(pty_name)) != 0) {
        return 1;
    }
    /* The UART would otherwise also print the firmware's lines on the console. */
    uint32_t flags = 0;
    avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
    flags &= ~(uint32_t)AVR_UART_FLAG_STDIO;
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    bridge.to_avr = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT),
                            uart_output_hook, &bridge);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON),
                            xon_hook, &bridge);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF),
                            xoff_hook, &bridge);
    avr_cycle_timer_register_usec(avr, BRIDGE_PERIOD_US, bridge_poll, &bridge);

    printf("PTY %s\n", pty_name);
    if (wait_open && wait_for_open(&bridge, pty_name) != 0) {
        return stop_requested ? 0 : 1;
    }

    avr->sleep = locked_sleep;
    anchor_clock(avr);
    int state = cpu_Running;
    while (!stop_requested) {
        state = avr_run(avr);
        if (state == cpu_Done || state == cpu_Crashed) {
            break;
        }
    }
    flush_out(&bridge);
    if (bridge.dropped) {
        fprintf(stderr, "simstim: %lu bytes from the board were dropped: nobody read %s\n",
                bridge.dropped, pty_name);
    }
    if (log != stdout) {
        fclose(log);
    }
    if (state == cpu_Crashed) {
        fprintf(stderr, "simstim: the firmware crashed at pc 0x%04x\n", (unsigned)avr->pc);
        return 1;
    }
    avr_terminate(avr);
    return 0;
}
