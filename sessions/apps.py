from django.apps import AppConfig


class AgentSessionsConfig(AppConfig):
    name = "sessions"
    # "sessions" is django.contrib.sessions' label; ours must differ.
    label = "agent_sessions"
    verbose_name = "Conversations"
    default_auto_field = "django.db.models.BigAutoField"
