"""scripts/stack.py helpers that need no running processes."""

from __future__ import annotations


def test_channels_whose_secrets_are_unset_are_left_out_and_named() -> None:
    from scripts.stack import enabled_channels

    text = (
        "connectors.rest.EngageRestInput:\n  max_message_chars: 4096\n\n"
        "connectors.whatsapp.WhatsAppInput:\n  access_token: ${WHATSAPP_ACCESS_TOKEN}\n  app_secret: ${WHATSAPP_APP_SECRET}  # from Meta\n\n"
        "connectors.telegram.TelegramInput:\n  bot_token: ${TELEGRAM_BOT_TOKEN}\n  # webhook: ${NOT_A_SETTING}\n"
    )
    kept, off = enabled_channels(text, {"TELEGRAM_BOT_TOKEN": "123:abc", "WHATSAPP_APP_SECRET": ""})
    assert "EngageRestInput" in kept and "TelegramInput" in kept and "WhatsApp" not in kept
    assert off == {"connectors.whatsapp.WhatsAppInput": ["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET"]}
    assert enabled_channels(text, {"TELEGRAM_BOT_TOKEN": "t", "WHATSAPP_ACCESS_TOKEN": "a", "WHATSAPP_APP_SECRET": "s"}) == (text, {})
