"""Channel connectors hosted by the Rasa server (REST first); each module is one channel."""
