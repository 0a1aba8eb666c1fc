"""What connectors say to customers in their own words (no Rasa imports: tests in the other runtime read it)."""

# The one place the apology lives; every connector sends exactly this.
APOLOGY_TEXT = (
    "Sorry, something went wrong on our side and I couldn't answer that just now. "
    "Please try again in a minute, or e-mail support@quillstack.example and we'll get back to you."
)

TEXT_ONLY = "I can only read text for now. Could you type your message instead?"


def too_long_text(length: int, limit: int) -> str:
    return (
        f"Sorry, that message is too long for me ({length} characters). "
        f"Please keep it under {limit} characters, or split it into a few shorter messages."
    )
