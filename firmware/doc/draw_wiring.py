"""Draw the stimulus box wiring picture (firmware/doc/wiring.svg) used by docs/arduino.md.

Run ``python firmware/doc/draw_wiring.py``; it writes the SVG beside itself. Plain SVG text, no
libraries: an Arduino Uno's digital header, then three example loads on channels 0..2, each
with its ground joined to the board's GND (the common ground every TTL signal needs).
"""

from __future__ import annotations

from pathlib import Path

WIDTH, HEIGHT = 980, 600
BOARD = (30, 60, 230, 480)  # x, y, width, height
PIN_X = BOARD[0] + BOARD[2]  # header pins sit on the board's right edge
GROUND_Y = 560
SIGNAL = "#c0392b"
GROUND = "#2c3e50"
SUPPLY = "#d35400"


def rect(x: float, y: float, w: float, h: float, fill: str = "#fff", stroke: str = "#333") -> str:
    """Draw a rectangle."""
    return (
        f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="2"/>'
    )


def line(points: list[tuple[float, float]], color: str, width: float = 3) -> str:
    """Draw a wire through ``points``."""
    path = " ".join(f"{x},{y}" for x, y in points)
    return (
        f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="{width}" '
        f'stroke-linejoin="round"/>'
    )


def text(
    x: float, y: float, words: str, size: int = 14, anchor: str = "start", bold: bool = False
) -> str:
    """Draw a label."""
    weight = ' font-weight="bold"' if bold else ""
    return (
        f'<text x="{x}" y="{y}" font-family="Helvetica, Arial, sans-serif" font-size="{size}" '
        f'text-anchor="{anchor}"{weight}>{words}</text>'
    )


def dot(x: float, y: float, color: str) -> str:
    """Draw a solder joint."""
    return f'<circle cx="{x}" cy="{y}" r="5" fill="{color}"/>'


def board() -> list[str]:
    """Draw the Uno with its D2..D13 header and a GND pin; channel numbers beside the pins."""
    x, y, w, h = BOARD
    parts = [
        rect(x, y, w, h, fill="#1f6fb2", stroke="#0d3c66"),
        text(x + w / 2, y + 40, "Arduino Uno / Nano", 18, "middle", bold=True),
        text(x + w / 2, y + 62, "ATmega328P, 16 MHz", 13, "middle"),
        text(x + w / 2, y + 82, "USB: 115200 8N1 to the host", 13, "middle"),
    ]
    for channel in range(12):
        pin_y = y + 120 + channel * 26
        parts += [
            f'<rect x="{PIN_X - 16}" y="{pin_y - 8}" width="16" height="16" fill="#222"/>',
            text(PIN_X - 24, pin_y + 5, f"D{channel + 2}  (ch {channel})", 13, "end"),
        ]
    gnd_y = y + h - 30
    parts += [
        f'<rect x="{PIN_X - 16}" y="{gnd_y - 8}" width="16" height="16" fill="#222"/>',
        text(PIN_X - 24, gnd_y + 5, "GND", 13, "end", bold=True),
        line([(PIN_X, gnd_y), (PIN_X + 30, gnd_y), (PIN_X + 30, GROUND_Y)], GROUND),
    ]
    return [
        p.replace('font-size="1', 'fill="#fff" font-size="1') if "<text" in p else p for p in parts
    ]


def pin_y(channel: int) -> float:
    """Height of channel ``channel``'s header pin."""
    return BOARD[1] + 120 + channel * 26


def bnc_load(channel: int, top: float, title: str, detail: str, ground_x: float) -> list[str]:
    """Draw a driver with a TTL input (BNC): signal to the centre pin, ground to the shield."""
    box_x, box_w, box_h = 620, 300, 90
    y_signal = top + 35
    x_turn = 330 + channel * 30
    return [
        line(
            [
                (PIN_X, pin_y(channel)),
                (x_turn, pin_y(channel)),
                (x_turn, y_signal),
                (box_x, y_signal),
            ],
            SIGNAL,
        ),
        rect(box_x, top, box_w, box_h, fill="#fdf2e9"),
        text(box_x + 15, top + 25, title, 15, bold=True),
        text(box_x + 15, top + 45, "TTL / MOD input (BNC centre)", 12),
        text(box_x + 15, top + 65, detail, 12),
        text(box_x + 15, top + 82, "BNC shield = ground", 12),
        line([(box_x + box_w, top + 70), (ground_x, top + 70), (ground_x, GROUND_Y)], GROUND),
        dot(ground_x, GROUND_Y, GROUND),
    ]


def diode(x: float, top: float, bottom: float) -> list[str]:
    """Draw a flyback diode from ``bottom`` (anode) up to ``top`` (cathode) at ``x``."""
    middle = (top + bottom) / 2
    return [
        line([(x, top), (x, bottom)], "#555", 2),
        f'<polygon points="{x - 9},{middle + 8} {x + 9},{middle + 8} {x},{middle - 6}" '
        f'fill="#555"/>',
        line([(x - 10, middle - 7), (x + 10, middle - 7)], "#555", 3),
    ]


def solenoid(channel: int) -> list[str]:
    """Draw a 12 V valve switched by a logic-level N-MOSFET on channel ``channel``."""
    gate_y = 440
    x_turn = 330 + channel * 30
    mosfet_x = 560
    coil_x = 720
    supply_wire_y = gate_y - 165
    drain_wire_y = gate_y - 30
    return [
        line(
            [(PIN_X, pin_y(channel)), (x_turn, pin_y(channel)), (x_turn, gate_y), (470, gate_y)],
            SIGNAL,
        ),
        rect(470, gate_y - 10, 50, 20, fill="#f7dc6f"),
        text(495, gate_y - 16, "220 Ω", 12, "middle"),
        line([(520, gate_y), (mosfet_x, gate_y)], SIGNAL),
        # pull-down: keeps the gate low while the board boots or is unplugged
        line([(540, gate_y), (540, gate_y + 25)], SIGNAL, 2),
        rect(532, gate_y + 25, 16, 40, fill="#f7dc6f"),
        text(526, gate_y + 50, "10 kΩ", 12, "end"),
        line([(540, gate_y + 65), (540, GROUND_Y)], GROUND, 2),
        dot(540, GROUND_Y, GROUND),
        # the MOSFET: gate from the board, drain to the coil, source to ground
        rect(mosfet_x, gate_y - 40, 84, 80, fill="#eaf2f8"),
        text(mosfet_x + 42, gate_y - 5, "N-MOSFET", 12, "middle", bold=True),
        text(mosfet_x + 42, gate_y + 12, "logic level", 11, "middle"),
        text(mosfet_x + 42, gate_y + 27, "(IRLZ44N)", 11, "middle"),
        text(mosfet_x - 4, gate_y + 16, "G", 12, "end"),
        text(mosfet_x + 88, gate_y - 16, "D", 12),
        text(mosfet_x + 48, gate_y + 56, "S", 12),
        line([(mosfet_x + 42, gate_y + 40), (mosfet_x + 42, GROUND_Y)], GROUND),
        dot(mosfet_x + 42, GROUND_Y, GROUND),
        line(
            [(mosfet_x + 84, drain_wire_y), (coil_x, drain_wire_y), (coil_x, gate_y - 60)], GROUND
        ),
        # the valve coil, its flyback diode across it, and its supply
        rect(coil_x - 30, gate_y - 130, 60, 70, fill="#d5f5e3"),
        text(coil_x, gate_y - 100, "solenoid", 12, "middle", bold=True),
        text(coil_x, gate_y - 84, "valve", 12, "middle", bold=True),
        line([(coil_x, gate_y - 130), (coil_x, supply_wire_y), (830, supply_wire_y)], SUPPLY),
        line([(coil_x, supply_wire_y), (coil_x - 60, supply_wire_y)], SUPPLY, 2),
        line([(coil_x, drain_wire_y), (coil_x - 60, drain_wire_y)], "#555", 2),
        *diode(coil_x - 60, supply_wire_y, drain_wire_y),
        text(coil_x - 72, gate_y - 104, "1N4007", 11, "end"),
        text(coil_x - 72, gate_y - 90, "cathode", 11, "end"),
        text(coil_x - 72, gate_y - 76, "to +12 V", 11, "end"),
        rect(830, supply_wire_y - 20, 80, 60, fill="#fdebd0", stroke=SUPPLY),
        text(870, supply_wire_y + 5, "12 V", 14, "middle", bold=True),
        text(870, supply_wire_y + 23, "supply", 12, "middle"),
        text(820, supply_wire_y - 6, "+", 14, "end", bold=True),
        line([(870, supply_wire_y + 40), (870, GROUND_Y)], GROUND),
        text(878, supply_wire_y + 56, "−", 14, bold=True),
        dot(870, GROUND_Y, GROUND),
    ]


def drawing() -> str:
    """Return the whole SVG document."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        text(
            30,
            35,
            "Stimulus box wiring: channel n = pin D(n+2), HIGH = on (5 V TTL)",
            18,
            bold=True,
        ),
        *bnc_load(0, 60, "LED driver", "e.g. Thorlabs LEDD1B in TRIG mode", 960),
        *bnc_load(1, 160, "Laser driver", "digital modulation input", 940),
        *solenoid(2),
        line([(PIN_X + 30, GROUND_Y), (960, GROUND_Y)], GROUND, 4),
        text(
            600,
            GROUND_Y + 25,
            "common ground: board GND, every driver's ground, the 12 V supply's minus",
            13,
            "middle",
        ),
        *board(),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def main() -> None:
    """Write wiring.svg next to this script."""
    target = Path(__file__).with_name("wiring.svg")
    target.write_text(drawing(), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
