"""A node's replica of the read model (docs/scaling.md): its own SQLite file in the listener's
schema (``store.py``), the listener's snapshot and outbox over HTTP (``client.py``), and the
follower that keeps it current from Kafka in sequence order (``follower.py``)."""
