"""Device sources: where readings enter the gateway."""
