"""Test harness: a fake Slack Web API, Slack request signing, the bot over real HTTP."""
