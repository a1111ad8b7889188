"""Ingest stages: small units with one job each, composed by the ingest workers.

- ``refusal``: what a refused input becomes (a quarantine record with a fixed code).
- ``decode``: MQTT message -> readings, statuses, alarms; bounded before parsing, total over
  its input (every byte sequence ends as work or as a refusal, never as an exception).
- ``validate``: a reading's value and times checked before anything is stored.
- ``store``: the InfluxDB write, retried while the store is away, with bad points found by
  bisection when it refuses.

``cloud_api.ingest`` composes them (with record, evaluate and acknowledge) for the single
process and ``cloud_api.sharding`` for the intake and shard roles.
"""
