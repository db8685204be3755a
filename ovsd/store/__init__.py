"""The shared store: Valkey/Redis through txredisapi, embedded or external."""
