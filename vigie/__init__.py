"""Vigie: shared contract, command line, services and demo."""
