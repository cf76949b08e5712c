"""The compiled engine with the bot's full semantics (see :mod:`.kernel`)."""
