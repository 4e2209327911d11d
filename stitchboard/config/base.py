"""Base model for everything read from slas.yaml: unknown fields are errors."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
