"""Protobuf <-> domain conversions, one module per resource (the only code that maps
generated messages to core types)."""
