"""The work of each domain: what views and tasks call; task functions live here."""
