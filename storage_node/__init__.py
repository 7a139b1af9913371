"""storage_node."""
