"""Simulated devices and patients; encoders written from the standards, independent of device_drivers."""
