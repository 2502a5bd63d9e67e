"""The Kafka event store: the topic is the source of truth, a local SQLite file is its index.

The backend is ``plugins.kafka.store.KafkaEventStore``; nothing here imports the driver, so the
plugin (plugins.kafka.plugin) loads without it."""
