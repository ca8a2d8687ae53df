"""`cotbridge serve`: start a study's open models on vLLM with the flags their families need (families.toml), wait
for their health, hand their URLs to `run`, and stop them. Above the study layer: it reads study files."""

from cotbridge.serving.launcher import ServeError, ServerFleet, serving
from cotbridge.serving.plan import ServePlan, ServerPlan, plan_servers, servers_file
from cotbridge.serving.urls import with_served_urls

__all__ = [
    "ServeError",
    "ServePlan",
    "ServerFleet",
    "ServerPlan",
    "plan_servers",
    "servers_file",
    "serving",
    "with_served_urls",
]
