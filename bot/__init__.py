"""carebot — social customer care inside Slack."""

__version__ = "0.1.0"
