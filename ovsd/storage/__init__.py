"""The storage data plane's foundation: qemu-storage-daemon as the StorageDriver process (DESIGN.md)."""
