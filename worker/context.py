"""What every job needs, built once per worker process from the same settings as everything else."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from intake.config import HotlineConfig, Settings, get_settings
from intake.db import session_factory


def settings() -> Settings:
    return get_settings()


def config() -> HotlineConfig:
    return get_settings().config


def sessions() -> sessionmaker[Session]:
    return session_factory(get_settings().database_url)
