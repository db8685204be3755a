"""ovsd: the node agent of an Open vStorage-style storage cluster."""

__version__ = "0.1.0"
