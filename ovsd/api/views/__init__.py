"""Resource views: one module per resource (or family); each declares its endpoints on import."""
