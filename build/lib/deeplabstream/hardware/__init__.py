"""Hardware plugins: cameras, stimulation devices, and the simulated rig behind them."""
