"""The Firebase RTDB wire protocol v5, sans I/O: messages, codec, framing, session."""
