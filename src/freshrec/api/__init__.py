"""The thin HTTP layer: ``create_app(engine)``."""

from freshrec.api.app import create_app

__all__ = ["create_app"]
