"""Safe answers: sanitised download names, nosniff everywhere, escaped text in html answers."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask, Response, send_file
from flask.testing import FlaskClient
from markupsafe import Markup

from flask_flexactions import FlexActions, Result
from flask_flexactions.run.downloads import MAX_NAME_LENGTH, safe_filename
from tests.conftest import AUTH, URL

EXPORT = {"name": "execute_action", "params": {"name": "export"}}


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/abs/path/x.txt", "x.txt"),
        ("..", "download"),
        ("...", "download"),
        ("", "download"),
        (".hidden", "hidden"),
        ('say "hi".txt', "say hi.txt"),
        ("a\r\nSet-Cookie: x=1.csv", "aSet-Cookie: x=1.csv"),
        ("nul\x00byte.bin", "nulbyte.bin"),
        ("del\x7f.bin", "del.bin"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("line\u2028sep.txt", "linesep.txt"),
        ("café.pdf", "café.pdf"),
        ("trailing. ", "trailing"),
    ],
)
def test_safe_filename(given: str, safe: str) -> None:
    assert safe_filename(given) == safe


def test_long_names_keep_their_extension() -> None:
    name = safe_filename("x" * 500 + ".csv")
    assert len(name) == MAX_NAME_LENGTH and name.endswith("xxx.csv")
    assert len(safe_filename("y" * 500)) == MAX_NAME_LENGTH


def export_with(flex: FlexActions, response: Any) -> None:
    @flex.action()
    def export(params: dict[str, Any]) -> Any:
        return response() if callable(response) else response


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="../secret.txt"', 'attachment; filename="secret.txt"'),
        ('attachment; filename="a\\"b.csv"', 'attachment; filename="ab.csv"'),
        (
            "attachment; filename*=UTF-8''%E2%80%AEfdp.exe%0D%0AX-Evil%3A%201",
            'attachment; filename="fdp.exeX-Evil: 1"',
        ),
        (
            "attachment; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf",
            'attachment; filename="naive resume.pdf"; '
            "filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf",
        ),
        (
            "attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A.csv",
            "attachment; filename=\"download.csv\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.csv",
        ),
        ('inline; filename="view.pdf"', 'inline; filename="view.pdf"'),
        ('form-data; name="x"', "attachment"),
        ("attachment", "attachment"),
    ],
)
def test_content_disposition_is_rebuilt(
    flex: FlexActions, client: FlaskClient, header: str, expected: str
) -> None:
    export_with(flex, lambda: Response(b"data", headers={"Content-Disposition": header}))
    response = client.post(URL, json=EXPORT, headers=AUTH)
    assert response.status_code == 200 and response.data == b"data"
    assert response.headers["Content-Disposition"] == expected
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_send_file_names_are_sanitised(flex: FlexActions, client: FlaskClient) -> None:
    export_with(
        flex,
        lambda: send_file(io.BytesIO(b"x"), as_attachment=True, download_name="../Ünïcode.csv"),
    )
    response = client.post(URL, json=EXPORT, headers=AUTH)
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"Unicode.csv\"; filename*=UTF-8''%C3%9Cn%C3%AFcode.csv"
    )


def test_a_handlers_own_headers_are_replaced_not_doubled(
    flex: FlexActions, client: FlaskClient
) -> None:
    own = {
        "X-Content-Type-Options": "sniff-away",
        "Access-Control-Allow-Origin": "https://evil.example",
        "Access-Control-Allow-Methods": "DELETE",
        "Vary": "Accept-Encoding",
    }
    export_with(flex, lambda: Response(b"data", headers=own))
    response = client.post(URL, json=EXPORT, headers=AUTH)
    assert response.status_code == 200
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert response.headers.getlist("Access-Control-Allow-Origin") == []
    assert response.headers.getlist("Access-Control-Allow-Methods") == ["POST, OPTIONS"]
    assert response.headers.getlist("Vary") == ["Accept-Encoding", "Origin"]


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {"name": "get_action_list"}, "headers": AUTH},
        {"json": {"name": "get_action_list"}},
        {"json": {"name": "nope"}, "headers": AUTH},
        {"data": "{", "content_type": "application/json", "headers": AUTH},
        {"method": "OPTIONS"},
        {"method": "GET"},
    ],
    ids=["list", "401", "400", "bad-json", "preflight", "405"],
)
def test_every_answer_is_nosniff(client: FlaskClient, request_kwargs: dict[str, Any]) -> None:
    method = request_kwargs.pop("method", "POST")
    response = client.open(URL, method=method, **request_kwargs)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("result", "html"),
    [
        (
            Result.from_text("<script>alert(1)</script> & co"),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co",
        ),
        (
            Result(html=Markup("User <b>{}</b> updated").format("<img onerror=x>")),
            "User <b>&lt;img onerror=x&gt;</b> updated",
        ),
        (
            Result(html="User <strong>wallet</strong> was updated"),
            "User <strong>wallet</strong> was updated",
        ),
    ],
    ids=["from-text", "markup-format", "trusted-str"],
)
def test_html_answers(
    app: Flask, flex: FlexActions, client: FlaskClient, result: Result, html: str
) -> None:
    export_with(flex, result)
    response = client.post(URL, json=EXPORT, headers=AUTH)
    assert response.get_json() == {"result": True, "html": html}
