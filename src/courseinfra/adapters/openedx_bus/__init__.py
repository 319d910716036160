"""The Open edX event bus: the Avro schemas of the signals this project reads (:mod:`.schemas`), the
stream entries and Kafka messages that carry them (:mod:`.wire`), and the streams they are read from
(:mod:`.streams`)."""
