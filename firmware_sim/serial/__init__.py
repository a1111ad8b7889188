"""Simulated serial instruments (ASTM E1381/E1394) on pseudo-terminals.

Independent of ``device_drivers``: the encoders and the sender role are written from
the standards here, so tests compare two implementations.
"""

from firmware_sim.serial.astm_sim import (
    Faults,
    GlucometerSim,
    InstrumentSender,
    PocAnalyzerSim,
    PocTest,
    Timers,
    astm_escape,
    sim_frame,
    sim_frames,
)
from firmware_sim.serial.onetouch_sim import OneTouchPty, UltraEasyMeterSim
from firmware_sim.serial.pty_device import PtyDevice
from firmware_sim.serial.ward import WardAnalyzerSim, random_test, start_ward_analyzer

__all__ = [
    "Faults",
    "GlucometerSim",
    "InstrumentSender",
    "OneTouchPty",
    "PocAnalyzerSim",
    "PocTest",
    "PtyDevice",
    "Timers",
    "UltraEasyMeterSim",
    "WardAnalyzerSim",
    "astm_escape",
    "random_test",
    "sim_frame",
    "sim_frames",
    "start_ward_analyzer",
]
