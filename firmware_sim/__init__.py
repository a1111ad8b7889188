"""Simulated devices and patients.

Encoders are written from the standards, independently of ``device_drivers``.
"""
