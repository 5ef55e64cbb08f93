"""The admin's middleware, run for the admin's paths only.

Sessions, CSRF, authentication, messages and static files serve the admin alone, and Django
runs each of their hooks through a thread hop. ``AdminOnlyMiddleware`` builds their chain
once, around its own ``get_response``, and sends only requests under
``ADMIN_PATH_PREFIXES`` through it; every other request goes straight on.
"""

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from agent_runtime.middleware import AsyncMiddleware, GetResponse


class AdminOnlyMiddleware(AsyncMiddleware):
    """Runs ``ADMIN_MIDDLEWARE``, in order, around requests under ``ADMIN_PATH_PREFIXES``.

    Their ``process_view`` hooks run too (CSRF's is one), from this middleware's own; hooks
    Django would collect otherwise (exceptions, template responses) are refused at start-up.
    """

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self.prefixes = tuple(settings.ADMIN_PATH_PREFIXES)
        handler = get_response
        view_hooks = []
        for path in reversed(settings.ADMIN_MIDDLEWARE):
            factory = import_string(path)
            if not getattr(factory, "async_capable", False):
                raise ImproperlyConfigured(f"ADMIN_MIDDLEWARE: {path} is not async-capable.")
            try:
                instance = factory(handler)
            except MiddlewareNotUsed:
                continue
            for hook in ("process_exception", "process_template_response"):
                if hasattr(instance, hook):
                    raise ImproperlyConfigured(
                        f"ADMIN_MIDDLEWARE: {path} has {hook}, which runs only from MIDDLEWARE."
                    )
            if hasattr(instance, "process_view"):
                view_hooks.insert(0, instance.process_view)
            handler = convert_exception_to_response(instance)
        self.admin_chain = handler
        self.view_hooks = [
            hook if iscoroutinefunction(hook) else sync_to_async(hook) for hook in view_hooks
        ]

    @classmethod
    def stands_for(cls) -> list[str]:
        return list(settings.ADMIN_MIDDLEWARE)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(self.prefixes):
            return await self.admin_chain(request)
        return await self.get_response(request)

    async def process_view(
        self, request: HttpRequest, view: object, args: tuple, kwargs: dict
    ) -> HttpResponse | None:
        if not request.path.startswith(self.prefixes):
            return None
        for hook in self.view_hooks:
            response = await hook(request, view, args, kwargs)
            if response is not None:
                return response
        return None
