"""The base of the config's own sections: unknown keys are refused (a typo would otherwise silently fall back
to a default) and assignments are validated too."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
