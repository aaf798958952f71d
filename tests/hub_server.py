"""A fake Hugging Face Hub on 127.0.0.1 for push tests: real HTTP, in-memory git-like repos.

It answers the endpoints huggingface_hub 2.4 calls to create a dataset repo, validate the card,
preupload (every file is ``regular``: tests keep files small, so no LFS or Xet), commit (NDJSON),
tag, list refs, list trees, give repo info, and resolve files (HEAD/GET with ranges). Every request
is recorded so tests can assert what arrived, including headers and bodies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    """The git blob sha1 of ``data`` (what the Hub calls a regular file's oid)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    summary: str
    files: dict[str, bytes]


@dataclass
class FakeRepo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pulls: dict[str, str] = field(default_factory=dict)

    def commit(self, parent: str | None, summary: str, files: dict[str, bytes]) -> Commit:
        blob = json.dumps([parent, summary, len(self.commits), sorted((p, git_blob_oid(b)) for p, b in files.items())])
        c = Commit(hashlib.sha1(blob.encode()).hexdigest(), parent, summary, files)
        self.commits[c.oid] = c
        return c

    def resolve(self, rev: str) -> Commit | None:
        rev = unquote(rev)
        for table in (self.branches, self.tags):
            if rev in table:
                return self.commits[table[rev]]
        if rev.startswith("refs/pr/") and rev in self.pulls:
            return self.commits[self.pulls[rev]]
        return self.commits.get(rev)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class FakeHub:
    """The server state and its thread. Use as a context manager; ``url`` is its endpoint."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Request] = []
        #: Numbers (1-based, counted over the server's life) of commit requests to answer with a 500.
        self.fail_commits: set[int] = set()
        self.commit_requests = 0
        self.lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            state = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def create(self, repo_id: str, private: bool) -> FakeRepo:
        repo = FakeRepo(repo_id, private)
        first = repo.commit(None, "initial commit", {".gitattributes": GITATTRIBUTES})
        repo.branches["main"] = first.oid
        self.repos[repo_id] = repo
        return repo


_API = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)(?:/(?P<op>[a-z-]+)(?:/(?P<rest>.*))?)?$")
_RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class _Handler(BaseHTTPRequestHandler):
    state: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    # -- plumbing -------------------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, payload=None, headers: dict[str, str] | None = None, raw: bytes | None = None,
              head: bool = False) -> None:
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status >= 400:
            self.send_header("X-Error-Message", (payload or {}).get("error", "error"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        self._send(status, {"error": message}, headers={"X-Error-Code": code} if code else None)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.state.token}"

    def _record(self, body: bytes) -> None:
        with self.state.lock:
            self.state.requests.append(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))

    def _repo(self, repo_id: str, write: bool = False) -> FakeRepo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None or ((repo.private or write) and not self._authorized()):
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        return repo

    # -- verbs ----------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._record(b"")
        self._resolve(head=True)

    def do_GET(self) -> None:
        self._record(b"")
        url = urlsplit(self.path)
        if _RESOLVE.match(url.path):
            return self._resolve(head=False)
        m = _API.match(url.path)
        if not m:
            return self._error(404, f"no route {url.path}")
        repo = self._repo(m["repo"])
        if repo is None:
            return
        op, rest, query = m["op"], m["rest"] or "", parse_qs(url.query)
        if op == "refs":
            def ref(name, kind, oid):
                return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}
            return self._send(200, {
                "branches": [ref(n, "heads", o) for n, o in sorted(repo.branches.items())],
                "tags": [ref(n, "tags", o) for n, o in sorted(repo.tags.items())],
                "converts": [],
                "pullRequests": [{"name": n, "ref": n, "targetCommit": o} for n, o in sorted(repo.pulls.items())],
            })
        if op in (None, "revision"):
            commit = repo.resolve(rest.split("/")[0] if op else "main")
            if commit is None:
                return self._error(404, "Revision not found", "RevisionNotFound")
            return self._send(200, {
                "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.oid, "private": repo.private,
                "siblings": [{"rfilename": p, "size": len(b)} for p, b in sorted(commit.files.items())],
                "tags": [], "lastModified": "2026-01-01T00:00:00.000Z", "disabled": False, "gated": False,
            })
        if op == "tree":
            rev, _, sub = rest.partition("/")
            commit = repo.resolve(rev)
            if commit is None:
                return self._error(404, "Revision not found", "RevisionNotFound")
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            return self._send(200, _tree(commit, unquote(sub).strip("/"), recursive))
        return self._error(404, f"no route {url.path}")

    def do_DELETE(self) -> None:
        self._record(b"")
        m = _API.match(urlsplit(self.path).path)
        if not m or m["op"] != "tag":
            return self._error(404, "no route")
        repo = self._repo(m["repo"], write=True)
        if repo is None:
            return
        if repo.tags.pop(unquote(m["rest"] or ""), None) is None:
            return self._error(404, "Tag not found", "RevisionNotFound")
        self._send(200, {})

    def do_POST(self) -> None:
        body = self._body()
        self._record(body)
        url = urlsplit(self.path)
        if url.path == "/api/repos/create":
            return self._create(json.loads(body))
        if url.path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        m = _API.match(url.path)
        if not m:
            return self._error(404, f"no route {url.path}")
        repo = self._repo(m["repo"], write=m["op"] != "paths-info")
        if repo is None:
            return
        rev = unquote((m["rest"] or "main").split("/")[0])
        query = parse_qs(url.query)
        if m["op"] == "preupload":
            commit = repo.resolve(rev) or repo.resolve("main")
            files = json.loads(body)["files"]
            return self._send(200, {"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                 "oid": git_blob_oid(commit.files[f["path"]]) if f["path"] in commit.files else None}
                for f in files]})
        if m["op"] == "commit":
            with self.state.lock:
                self.state.commit_requests += 1
                fail = self.state.commit_requests in self.state.fail_commits
            if fail:
                return self._error(500, "simulated failure")
            return self._commit(repo, rev, body, create_pr=query.get("create_pr") == ["1"])
        if m["op"] == "tag":
            payload = json.loads(body)
            commit = repo.resolve(rev)
            if commit is None:
                return self._error(404, "Revision not found", "RevisionNotFound")
            if payload["tag"] in repo.tags:
                return self._error(409, "Tag already exists")
            repo.tags[payload["tag"]] = commit.oid
            return self._send(200, {})
        if m["op"] == "paths-info":
            commit = repo.resolve(rev)
            if commit is None:
                return self._error(404, "Revision not found", "RevisionNotFound")
            paths = parse_qs(body.decode()).get("paths", [])
            return self._send(200, [e for e in _tree(commit, "", True) if e["path"] in paths])
        return self._error(404, f"no route {url.path}")

    # -- operations -----------------------------------------------------------------------------
    def _create(self, payload: dict) -> None:
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        if payload.get("type") != "dataset":
            return self._error(400, "this fake Hub only holds datasets")
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        with self.state.lock:
            if repo_id in self.state.repos:
                return self._send(409, {"error": "You already created this dataset repo",
                                        "url": f"{self.state.url}/datasets/{repo_id}"})
            self.state.create(repo_id, private=payload.get("visibility") != "public")
        self._send(200, {"url": f"{self.state.url}/datasets/{repo_id}", "name": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        m = re.match(r"^---\n(.*?)\n---\n", payload["content"], flags=re.S)
        try:
            meta = yaml.safe_load(m.group(1)) if m else None
        except yaml.YAMLError as exc:
            return self._send(400, {"errors": [{"message": str(exc)}]})
        if not isinstance(meta, dict):
            return self._send(400, {"errors": [{"message": "no YAML metadata"}]})
        self._send(200, {"errors": [], "warnings": []})

    def _commit(self, repo: FakeRepo, rev: str, body: bytes, create_pr: bool) -> None:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            return self._error(400, "commit payload must start with a header line")
        with self.state.lock:
            parent = repo.resolve(rev)
            if parent is None:
                return self._error(404, "Revision not found", "RevisionNotFound")
            files = dict(parent.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        return self._error(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    files = {p: b for p, b in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                else:
                    return self._error(400, f"fake Hub does not store {key} operations")
            commit = repo.commit(parent.oid, lines[0]["value"]["summary"], files)
            pr_url = None
            if create_pr:
                num = len(repo.pulls) + 1
                repo.pulls[f"refs/pr/{num}"] = commit.oid
                pr_url = f"{self.state.url}/datasets/{repo.repo_id}/discussions/{num}"
            elif rev.startswith("refs/pr/"):
                repo.pulls[rev] = commit.oid
            elif rev in repo.branches:
                repo.branches[rev] = commit.oid
            else:
                return self._error(400, f"cannot commit onto {rev}")
        self._send(200, {"commitUrl": f"{self.state.url}/datasets/{repo.repo_id}/commit/{commit.oid}",
                         "commitOid": commit.oid, "pullRequestUrl": pr_url})

    def _resolve(self, head: bool) -> None:
        m = _RESOLVE.match(urlsplit(self.path).path)
        if not m:
            return self._send(404, {"error": "no route"}, head=head)
        repo = self.state.repos.get(m["repo"])
        if repo is None or (repo.private and not self._authorized()):
            return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}, head=head)
        commit = repo.resolve(m["rev"])
        if commit is None:
            return self._send(404, {"error": "Revision not found"}, {"X-Error-Code": "RevisionNotFound"}, head=head)
        path = unquote(m["path"])
        if path not in commit.files:
            return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}, head=head)
        data = commit.files[path]
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_oid(data)}"', "Accept-Ranges": "bytes"}
        rng = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if rng and not head:
            start = int(rng[1])
            end = min(int(rng[2]) if rng[2] else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, headers=headers, raw=data[start:end + 1])
        self._send(200, headers=headers, raw=data, head=head)


def _tree(commit: Commit, sub: str, recursive: bool) -> list[dict]:
    """Tree entries (files and folders) under ``sub`` of a commit, the way ``/tree`` lists them."""
    prefix = f"{sub}/" if sub else ""
    entries: dict[str, dict] = {}
    for path, data in sorted(commit.files.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix):].split("/")
        for depth in range(1, len(parts)):
            folder = prefix + "/".join(parts[:depth])
            if recursive or depth == 1:
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest()})
            if not recursive:
                break
        if recursive or len(parts) == 1:
            entries[path] = {"type": "file", "path": path, "size": len(data), "oid": git_blob_oid(data)}
    return list(entries.values())
