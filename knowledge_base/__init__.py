"""The FAQ knowledge base: content loading and validation, semantic search, and the answer policy."""
