"""The routes of `qa serve` (see qa/serve.py for the parts that do not need Starlette)."""

from __future__ import annotations

import json
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .answer import DEFAULT_TOP
from .errors import QAError, UsageError
from .serve import (
    MAX_BODY_BYTES, MAX_TOP, SECURITY_HEADERS, STATIC, THREADS, TOKEN_COOKIE, WEB, ApiError,
    _int, _optional_str, _question, check_token, dumps, error_body,
)
from .serve_ops import PID, Answering

MAX_SOURCES_PAGE = 10_000


def _json(obj: dict, status: int = 200) -> Response:
    return Response(dumps(obj), status, headers=SECURITY_HEADERS, media_type="application/json")


async def _body(request: Request) -> dict:
    """The JSON object in the body, read no further than MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise UsageError("the request body must be a JSON object")
    return data


class ThreadBackend:
    """Answers in threads of this process, `threads` at once (the rest wait for one to finish)."""

    def __init__(self, answering: Answering, threads: int = THREADS) -> None:
        self.answering, self.threads = answering, threads
        self._limiter = None  # made inside the event loop, on first use

    async def call(self, op: str, *args) -> tuple[int, bytes, str]:
        import anyio
        import anyio.to_thread

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        status, body = await anyio.to_thread.run_sync(self.answering.outcome, op, list(args), limiter=self._limiter)
        return status, body, PID


def build(backend, token: str | None) -> Starlette:
    """The app; `backend.call(op, *args)` runs an operation of qa.serve_ops.Answering (in a thread
    here, or in a worker process: qa.serve_workers.WorkerPool) and gives (status, body, pid)."""

    def endpoint(work, page: bool = False):
        async def handle(request: Request) -> Response:
            t0 = time.perf_counter()
            worker = PID
            try:
                check_token(request.headers, request.cookies, request.query_params if page else {}, token)
                result = await work(request)
                if isinstance(result, tuple):  # (status, body, worker) from the backend
                    status, body, worker = result
                    result = Response(body, status, headers=SECURITY_HEADERS, media_type="application/json")
                response = result if isinstance(result, Response) else _json(result)
            except ApiError as e:
                response = _json(error_body(e), e.status)
            except UsageError as e:
                response = _json(error_body(e), 400)
            except QAError as e:
                response = _json(error_body(e), 500)
            # Time inside the server, waiting for an answering thread or worker included (the load script reads it).
            response.headers["server-timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.1f}"
            response.headers["x-qa-worker"] = worker  # which process answered (`qa serve --workers N`)
            return response

        return handle

    async def api_ask(request: Request):
        data = await _body(request)
        question = _question(data)
        top = _int(data.get("top", DEFAULT_TOP), "top", 1, MAX_TOP)
        return await backend.call("ask", question, top, _optional_str(data, "since"), _optional_str(data, "until"))

    async def api_chat(request: Request):
        data = await _body(request)
        question = _question(data)
        top = _int(data["top"], "top", 1, MAX_TOP) if "top" in data else None
        cid = data.get("conversation")
        return await backend.call("chat", cid, question, top)

    async def api_more(request: Request):
        return await backend.call("more", (await _body(request)).get("conversation"))

    async def api_reset(request: Request):
        return await backend.call("reset", (await _body(request)).get("conversation"))

    async def api_health(request: Request):
        return await backend.call("health")

    async def api_sources(request: Request):
        offset = _int(request.query_params.get("offset", 0), "offset", 0, 2**62)
        limit = _int(request.query_params.get("limit", 1000), "limit", 1, MAX_SOURCES_PAGE)
        return await backend.call("sources", offset, limit)

    async def api_paragraph(request: Request):
        doc = _int(request.query_params.get("doc"), "doc", 0, 2**62)
        paragraph = _int(request.query_params.get("paragraph"), "paragraph", 0, 2**31)
        return await backend.call("paragraph", doc, paragraph)

    async def page(request: Request):
        if token is not None and "token" in request.query_params:  # now checked: keep it in a cookie, off the URL
            response = RedirectResponse("/", 303, headers=SECURITY_HEADERS)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
            return response
        return Response((WEB / "index.html").read_bytes(), headers=SECURITY_HEADERS, media_type="text/html; charset=utf-8")

    async def static(request: Request):
        name = request.path_params["name"]
        if name not in STATIC:  # a fixed list: never a path taken from the request
            raise ApiError(404, f"no such file: {name}")
        return Response((WEB / name).read_bytes(), headers=SECURITY_HEADERS, media_type=STATIC[name])

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _json({"error": f"{exc.detail}: {request.method} {request.url.path}"}, exc.status_code)

    routes = [
        Route("/", endpoint(page, page=True)),
        Route("/static/{name}", endpoint(static)),
        Route("/api/ask", endpoint(api_ask), methods=["POST"]),
        Route("/api/chat", endpoint(api_chat), methods=["POST"]),
        Route("/api/more", endpoint(api_more), methods=["POST"]),
        Route("/api/reset", endpoint(api_reset), methods=["POST"]),
        Route("/api/health", endpoint(api_health)),
        Route("/api/sources", endpoint(api_sources)),
        Route("/api/paragraph", endpoint(api_paragraph)),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
