"""Realtime fan-out: listener index, query windows, bounded outboxes, brokers."""
