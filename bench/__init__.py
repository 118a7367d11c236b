"""Benchmark: the hub side by side with a raw aio-pika relay on the same broker and database."""
