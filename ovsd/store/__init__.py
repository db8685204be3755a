"""The shared store: Valkey/Redis, embedded or external. The only package that speaks the Redis protocol."""
