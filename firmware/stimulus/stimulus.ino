// Stimulus box firmware. The code is plain C in this folder (main.c and friends), and its
// main() takes the place of the Arduino core's, so there is nothing to write here: open this
// sketch in the Arduino IDE, choose "Arduino Uno" (or Nano, ATmega328P) and press Upload.
// The serial protocol is in docs/stimulation-protocol.md, the wiring in docs/arduino.md.
