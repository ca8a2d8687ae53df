"""The client: a Bridge hands out Models; every request of a Model runs through its request pipeline."""

from cotbridge.client.bridge import Bridge
from cotbridge.client.model import Model

__all__ = ["Bridge", "Model"]
