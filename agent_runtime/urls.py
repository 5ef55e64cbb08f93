from django.contrib import admin
from django.urls import path, re_path, register_converter

from agent_runtime import views
from agent_runtime.converters import SessionIdConverter
from sessions import views as sessions_views
from streaming import frontend_views
from streaming import views as streaming_views
from streaming.tools import views as tools_views

register_converter(SessionIdConverter, "session_id")

urlpatterns = [
    path("health", views.health),
    path("metrics", views.metrics_view),
    path("openapi.json", views.openapi),
    path("agent/message/stream", streaming_views.message_stream),
    path("agent/sessions/<session_id:session_id>/cancel", streaming_views.session_cancel),
    path("agent/tools", tools_views.tools_view),
    path("agent/sessions/<session_id:session_id>/stream", streaming_views.session_stream),
    path("agent/ai-sdk/chat", frontend_views.ai_sdk_chat),
    path("agent/ai-sdk/chat/<session_id:session_id>/stream", frontend_views.ai_sdk_chat_resume),
    path("agent/ag-ui", frontend_views.ag_ui_run),
    path("agent/sessions", sessions_views.session_list),
    path("agent/sessions/<session_id:session_id>", sessions_views.session_detail),
    path("agent/sessions/<session_id:session_id>/messages", sessions_views.message_list),
    path("admin/", admin.site.urls),
    # Unknown paths answer with the JSON error body, whatever DEBUG says.
    re_path(r"^(?!admin/)", views.not_found, name="not-found"),
]

handler400 = "agent_runtime.views.bad_request"
handler404 = "agent_runtime.views.page_not_found"
handler500 = "agent_runtime.views.server_error"
