"""The whole schema: every domain's model module, and the Alembic migrations run programmatically
(start-up, tests, the CLI).

`metadata` is `Base.metadata` with every table of every domain on it: Alembic's autogenerate, the
schema comparison test and the test database truncation read it from here.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from liaison.appraisal import models as appraisal_models  # noqa: F401
from liaison.bulletin import models as bulletin_models  # noqa: F401
from liaison.case import models as case_models  # noqa: F401  (each import puts its tables on metadata)
from liaison.console import models as console_models  # noqa: F401
from liaison.core.db import Base
from liaison.engagement import models as engagement_models  # noqa: F401
from liaison.intake import models as intake_models  # noqa: F401
from liaison.interop import models as interop_models  # noqa: F401
from liaison.media import models as media_models  # noqa: F401
from liaison.messaging import models as messaging_models  # noqa: F401
from liaison.people import models as people_models  # noqa: F401
from liaison.points import models as points_models  # noqa: F401
from liaison.project import models as project_models  # noqa: F401
from liaison.rota import models as rota_models  # noqa: F401
from liaison.suggestion import models as suggestion_models  # noqa: F401
from liaison.tenancy import models as tenancy_models  # noqa: F401

metadata = Base.metadata

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision`."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
