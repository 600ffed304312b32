"""Distributed mode (SPEC §0): Kafka carries the writes, ``freshrec worker`` applies them to Redis, and any
number of ``freshrec serve`` replicas answer from Redis."""
