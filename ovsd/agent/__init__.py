"""The node agent: identity, registration, heartbeats, status derivation, storagedriver supervision."""
