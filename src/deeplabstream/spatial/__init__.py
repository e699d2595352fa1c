"""Space: calibrated cameras, their calibration, and live triangulation to 3D."""
