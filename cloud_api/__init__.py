"""Cloud side: MQTT ingest into InfluxDB, relational state, HTTP API."""
