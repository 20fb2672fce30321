"""rtdb: a self-hosted realtime JSON database, wire-compatible with Firebase RTDB."""
