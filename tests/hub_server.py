"""A local HTTP server speaking the subset of the Hugging Face Hub API that `huggingface_hub` uses to create a repo,
upload a folder (preupload + NDJSON commit), and read it back (repo info, commits, tree, resolve).

Point the real client at it with HF_ENDPOINT. Every file is accepted as a regular (inline, base64) blob: LFS and Xet
transfers are the real Hub's business and not what the publish code decides. Writes and private reads need the
bearer token the server was started with; repos keep a full commit history, so tests can count commits.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    title: str
    message: str
    date: str
    files: dict[str, bytes]  # the whole tree after this commit


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: list[Commit] = field(default_factory=list)  # oldest first

    @property
    def head(self) -> Commit:
        return self.commits[-1]


class HubState:
    def __init__(self, token: str):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.Lock()

    def create(self, repo_type: str, repo_id: str, private: bool) -> bool:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                return False
            repo = Repo(repo_id, repo_type, private)
            self._commit(repo, "initial commit", "", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
            self.repos[(repo_type, repo_id)] = repo
            return True

    def _commit(self, repo: Repo, title: str, message: str, files: dict[str, bytes]) -> Commit:
        parent = repo.commits[-1].oid if repo.commits else ""
        digest = hashlib.sha1(json.dumps([parent, title, sorted((p, git_blob_sha1(b)) for p, b in files.items())]).encode())
        commit = Commit(digest.hexdigest(), title, message, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), files)
        repo.commits.append(commit)
        return commit

    def apply_commit(self, repo: Repo, lines: list[dict[str, Any]]) -> Commit:
        with self.lock:
            header = next(line["value"] for line in lines if line["key"] == "header")
            files = dict(repo.head.files)
            for line in lines:
                value = line["value"]
                if line["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "deletedFile":
                    files.pop(value["path"], None)
                elif line["key"] != "header":
                    raise ValueError(f"unsupported commit operation {line['key']!r}")
            return self._commit(repo, header["summary"], header.get("description", ""), files)


_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(revision|preupload|commit|commits|tree)/([^/]+)(/.*)?)?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class Handler(BaseHTTPRequestHandler):
    state: HubState  # set on the subclass made by `start_hub`

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read state, not access logs
        pass

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.state.token}"

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        self._send(status, {"error": message}, {"X-Error-Code": code} if code else None)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _repo(self, repo_type: str, repo_id: str) -> Repo | None:
        repo = self.state.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorized()):
            self._error(404, "Repository not found", "RepoNotFound")  # the Hub hides private repos the same way
            return None
        return repo

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        body = self._body()
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload['organization'] or 'local-user'}/{payload['name']}"
            private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            url = f"http://{self.headers['Host']}/{prefix}{repo_id}"
            if not self.state.create(repo_type, repo_id, private):  # the Hub answers 409 with the repo's url
                return self._send(409, {"error": "You already created this repo", "url": url})
            return self._send(200, {"url": url, "name": repo_id})
        if path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        match = _API.match(path)
        if not match or match.group(3) not in {"preupload", "commit"}:
            return self._error(404, f"no route {path}")
        repo = self._repo(_TYPES[match.group(1)], match.group(2))
        if repo is None:
            return
        if match.group(3) == "preupload":
            head = repo.head.files
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                      "oid": git_blob_sha1(head[f["path"]]) if f["path"] in head else None}
                     for f in json.loads(body)["files"]]
            return self._send(200, {"files": files, "commitOid": repo.head.oid})
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        commit = self.state.apply_commit(repo, lines)
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._send(200, {"commitOid": commit.oid, "commitUrl": f"http://{self.headers['Host']}/{prefix}{repo.repo_id}/commit/{commit.oid}",
                         "success": True, "pullRequestUrl": None})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/api/whoami-v2":
            if not self._authorized():
                return self._error(401, "Invalid credentials in Authorization header")
            return self._send(200, {"type": "user", "name": "local-user", "auth": {"type": "access_token"}})
        if match := _RESOLVE.match(url.path):
            repo = self._repo(_TYPES.get(f"{match.group(1)}", "model") if match.group(1) else "model", match.group(2))
            if repo is None:
                return
            data = repo.head.files.get(unquote(match.group(4)))
            if data is None:
                return self._error(404, "Entry not found", "EntryNotFound")
            return self._send(200, raw=data, headers={"ETag": f'"{git_blob_sha1(data)}"', "X-Repo-Commit": repo.head.oid})
        match = _API.match(url.path)
        if not match:
            return self._error(404, f"no route {url.path}")
        repo = self._repo(_TYPES[match.group(1)], match.group(2))
        if repo is None:
            return
        what = match.group(3)
        if what in (None, "revision"):
            siblings = [{"rfilename": p} for p in sorted(repo.head.files)]
            return self._send(200, {"id": repo.repo_id, "sha": repo.head.oid, "private": repo.private, "siblings": siblings,
                                    "lastModified": repo.head.date})
        if what == "commits":
            return self._send(200, [{"id": c.oid, "title": c.title, "message": c.message, "date": c.date,
                                     "authors": [{"user": "local-user"}]} for c in reversed(repo.commits)])
        if what == "tree":
            prefix = (match.group(5) or "").strip("/")
            recursive = parse_qs(url.query).get("recursive", ["false"])[0].lower() == "true"
            entries = [{"type": "file", "path": p, "size": len(b), "oid": git_blob_sha1(b)}
                       for p, b in sorted(repo.head.files.items())
                       if (not prefix or p.startswith(prefix + "/")) and (recursive or "/" not in p[len(prefix):].strip("/"))]
            return self._send(200, entries)
        self._error(404, f"no route {url.path}")


def start_hub(token: str, port: int = 0) -> tuple[ThreadingHTTPServer, HubState]:
    """Serve on 127.0.0.1 in a daemon thread; the caller shuts it down with `server.shutdown()`."""
    state = HubState(token)
    server = ThreadingHTTPServer(("127.0.0.1", port), type("HubHandler", (Handler,), {"state": state}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


if __name__ == "__main__":  # a standalone local Hub for trying `publish` by hand: python tests/hub_server.py PORT TOKEN
    import sys

    srv, _ = start_hub(sys.argv[2], int(sys.argv[1]))
    print(f"local Hub on http://127.0.0.1:{srv.server_address[1]}", flush=True)
    threading.Event().wait()
