"""The official-account webhook (Flask blueprint)."""
from bot.webhook import bp

__all__ = ["bp"]
