"""The object model: declarations, repository (atomic saves with index upkeep), queries, serializer."""
