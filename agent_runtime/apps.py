from django.apps import AppConfig


class AgentRuntimeConfig(AppConfig):
    name = "agent_runtime"
    verbose_name = "Agent Runtime"

    def ready(self) -> None:
        from agent_runtime import checks  # noqa: F401  (registers the system checks)
