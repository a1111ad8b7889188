"""Edge gateway: device sources, attribution, clock correction, durable outbox, MQTT."""
