"""Slack listeners and Block Kit rendering. Each module exposes ``register(app, services)``."""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services


def register_all(app: App, services: Services) -> None:
    from handlers import (
        actions,
        care_sources,
        care_stats,
        care_watch,
        care_workflow,
        commands,
        errors,
        events,
        home,
        views,
    )

    errors.register(app, services)
    actions.register(app, services)
    events.register(app, services)
    views.register(app, services)
    home.register(app, services)
    registry = commands.CareRegistry()
    # Feature modules add their /care subcommands here: module.register_care(registry, services)
    care_stats.register_care(registry, services)
    care_sources.register_care(registry, services)
    care_watch.register_care(registry, services)
    care_workflow.register_care(registry, services)
    commands.register(app, services, registry)
