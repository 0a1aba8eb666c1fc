"""Fake third-party providers (WhatsApp Graph API, Telegram Bot API) on 127.0.0.1, following their documented shapes."""
