"""Networks rebuilt here, so models trained elsewhere run without their frameworks."""
