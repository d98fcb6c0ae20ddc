# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Open WebUI as a person uses it: Debian's Chromium (``requirements/chromium.debian``) driven by playwright.

Playwright's own browser download is not reachable here, so it launches the Chromium that
``scripts/debian-programs.py`` installed, through ``executable_path``. ``Session`` is one person's browser tab: it
clicks and types as a person does (the pages' roles, labels and ids, no private API) and records what Open WebUI
streams to the page over its websocket (socket.io ``events``), so a test can tell a streamed answer from one that
arrived whole.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .example import ROOT

CHROMIUM = Path(os.environ.get("CHROMIUM_BIN") or ROOT / ".cache" / "chromium" / "chromium")
VIEWPORT = {"width": 1280, "height": 800}


def provided_chromium(chromium: Path = CHROMIUM) -> str:
    """The upstream version of the Chromium scripts/debian-programs.py provided (``156.0.8078.129`` of
    ``156.0.8078.129-1~deb12u1``, recorded beside the link), the newest in requirements/chromium.debian's range."""
    for line in (chromium.parent / "versions").read_text().splitlines():
        if line.startswith("chromium "):
            return line.split()[1].split("-", 1)[0]
    raise RuntimeError(f"{chromium.parent / 'versions'} names no chromium")


def chromium_release(chromium: Path = CHROMIUM) -> str:
    out = subprocess.run([str(chromium), "--version"], capture_output=True, text=True, timeout=30, check=False)
    match = re.search(r"Chromium (\d+(?:\.\d+)+)", out.stdout)
    if not match:
        raise RuntimeError(f"{chromium} --version printed no version: {(out.stdout + out.stderr)[-500:]}")
    return match.group(1)


@dataclass
class Answer:
    """One assistant message as the page received it."""

    message_id: str
    deltas: List[Tuple[float, str]] = field(default_factory=list)  # (seconds after sending, text) of each streamed piece
    done: Optional[Dict[str, Any]] = None  # the final chat:completion event's data
    sources: List[Dict[str, Any]] = field(default_factory=list)  # what retrieval found, as Open WebUI sent it to the page
    events: List[Dict[str, Any]] = field(default_factory=list)  # every event of the message, in order
    shown: str = ""  # the message's text on the page

    @property
    def streamed_text(self) -> str:
        return "".join(text for _, text in self.deltas)

    def of_type(self, kind: str) -> List[Dict[str, Any]]:
        return [e["data"] for e in self.events if e.get("type") == kind]


class Session:
    """A person's tab in Chromium on Open WebUI at ``url``; screenshots go to ``shots``."""

    def __init__(self, browser: Any, url: str, shots: Path) -> None:
        self.url = url
        self.shots = shots
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.frames: List[Tuple[float, Dict[str, Any]]] = []  # (monotonic time, socket.io event payload)
        self.page.on("websocket", self._watch)
        # an account meets the release notes of the running version over the chat page, when that page has loaded
        # its settings: close them whenever they stand in the way, as a person would
        self.page.add_locator_handler(self.page.get_by_role("button", name="Okay, Let's Go!"), lambda button: button.click())

    def _watch(self, websocket: Any) -> None:
        def received(frame: Any) -> None:
            text = frame if isinstance(frame, str) else frame.decode(errors="replace")
            if text.startswith('42["events"'):  # socket.io: 4 message, 2 event
                self.frames.append((time.monotonic(), json.loads(text[2:])[1]))

        websocket.on("framereceived", received)

    def close(self) -> None:
        self.context.close()

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    # -- getting in --

    def sign_up_first_admin(self, name: str, email: str, password: str) -> None:
        """The first visit: the welcome page, then the form that makes the first account the admin."""
        self.page.goto(self.url + "/")
        self.page.get_by_role("button", name="Get started").click()
        self.page.fill("#name", name)
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        self.page.get_by_role("button", name="Create Admin Account").click()
        self.page.locator("#chat-input").wait_for()

    def sign_in(self, email: str, password: str, shot: Optional[str] = None) -> None:
        self.page.goto(self.url + "/")
        self.page.wait_for_url("**/auth**")
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        if shot:
            self.shot(shot)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.locator("#chat-input").wait_for()

    def token(self) -> str:
        """The session's bearer token, as the page keeps it."""
        return str(self.page.evaluate("() => localStorage.token"))

    def admin_switches(self, settings_page: str, wanted: Dict[str, bool]) -> None:
        """Admin Panel > Settings > ``settings_page``: turn each named switch on or off, then save."""
        self.page.goto(f"{self.url}/admin/settings/{settings_page}")
        for name, on in wanted.items():
            switch = self.page.get_by_role("switch", name=name, exact=True)
            if (switch.get_attribute("aria-checked") == "true") != on:
                switch.click()
        with self.page.expect_response(lambda r: "/config/update" in r.url and r.request.method == "POST") as saved:
            self.page.get_by_role("button", name="Save", exact=True).click()
        if saved.value.status != 200:
            raise RuntimeError(f"saving {sorted(wanted)} answered {saved.value.status}: {saved.value.text()[:500]}")
        self.new_chat()

    # -- chatting --

    def offered_models(self, shot: Optional[str] = None) -> List[str]:
        """The models the picker offers."""
        self.page.click("#model-selector-model-button")
        listbox = self.page.get_by_role("listbox", name="Available models")
        listbox.wait_for()
        models = [str(option.get_attribute("data-value")) for option in listbox.get_by_role("option").all()]
        if shot:
            self.shot(shot)
        self.page.keyboard.press("Escape")
        return models

    def pick_model(self, name: str) -> None:
        self.page.click("#model-selector-model-button")
        self.page.get_by_role("option", name=f"Select {name} model").click()
        self.page.get_by_role("button", name=f"Selected model: {name}").wait_for()

    def new_chat(self) -> None:
        """The app's start page: a new chat."""
        self.page.goto(self.url + "/")
        self.page.locator("#chat-input").wait_for()

    def limit_answer(self, max_tokens: int) -> None:
        """Controls > Advanced Params > max_tokens, for this chat: a random-weight model may otherwise talk for
        thousands of tokens."""
        toggle = self.page.get_by_role("button", name="Controls", exact=True).first  # the navigation bar's
        toggle.click()
        row = self.page.locator("div", has=self.page.get_by_text("max_tokens", exact=True)).filter(has=self.page.get_by_role("button")).last
        row.get_by_role("button", name="Default").click()
        self.page.locator("input[type=number][aria-label=max_tokens]").fill(str(max_tokens))
        toggle.click()

    def toggle_image(self) -> None:
        """The message box's integrations menu: Image on, for the next message."""
        self.page.click("#integration-menu-button")
        button = self.page.get_by_role("button", name="Image", exact=True)
        button.click()
        if button.get_attribute("aria-pressed") != "true":
            raise RuntimeError("the Image switch of the integrations menu did not turn on")
        self.page.keyboard.press("Escape")

    def pictures(self, message_id: str, timeout: float = 60) -> List[Dict[str, Any]]:
        """The pictures a message shows, once they have loaded: their source and natural size."""
        images = self.page.locator(f"#message-{message_id} img[src*='/api/v1/files/']")
        images.first.wait_for(timeout=timeout * 1000)
        self.page.wait_for_function(
            "(id) => [...document.querySelectorAll(`#message-${id} img[src*='/api/v1/files/']`)].every(i => i.complete && i.naturalWidth > 0)",
            arg=message_id,
            timeout=timeout * 1000,
        )
        return [
            {"src": str(image.get_attribute("src")), "width": image.evaluate("i => i.naturalWidth"), "height": image.evaluate("i => i.naturalHeight")}
            for image in images.all()
        ]

    def attach(self, path: Path) -> None:
        """A file into the message box (the "+" menu's upload); waits until Open WebUI has processed it."""
        with self.page.expect_response(lambda r: "/api/v1/files/" in r.url and r.request.method == "POST", timeout=60_000) as upload:
            self.page.locator("input[type=file]:not(#camera-input)").first.set_input_files(str(path))
        if upload.value.status != 200:
            raise RuntimeError(f"the upload of {path.name} answered {upload.value.status}: {upload.value.text()[:500]}")
        file_id = upload.value.json()["id"]
        self._wait_processed(file_id)

    def _wait_processed(self, file_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.page.evaluate(
                """async ([id, token]) => (await (await fetch(`/api/v1/files/${id}/process/status`,
                       {headers: {Authorization: `Bearer ${token}`}})).json())""",
                [file_id, self.token()],
            )
            if status.get("status") in ("completed", "failed"):
                if status["status"] == "failed":
                    raise RuntimeError(f"Open WebUI could not process the file: {status}")
                return
            time.sleep(0.5)
        raise RuntimeError(f"file {file_id} was not processed within {timeout} s")

    def send(self, text: str, timeout: float = 120) -> Answer:
        """Type a message, press Enter and wait until the answer is complete."""
        before = len(self.frames)
        self.page.click("#chat-input")
        self.page.keyboard.type(text)
        sent = time.monotonic()
        self.page.keyboard.press("Enter")
        deadline = sent + timeout
        answer: Optional[Answer] = None
        while time.monotonic() < deadline:
            answer = self._answer(self.frames[before:], sent)
            if answer and (answer.done or answer.of_type("chat:message:error")):
                break
            self.page.wait_for_timeout(200)
        if not answer or not answer.done:
            errors = answer.of_type("chat:message:error") if answer else []
            raise RuntimeError(f"no complete answer within {timeout} s: {errors or 'no events'}")
        message = self.page.locator(f"#message-{answer.message_id}")
        message.wait_for()
        answer.shown = message.inner_text()
        return answer

    @staticmethod
    def _answer(frames: List[Tuple[float, Dict[str, Any]]], sent: float) -> Optional[Answer]:
        answer: Optional[Answer] = None
        for at, event in frames:
            if "message_id" not in event:
                continue
            if answer is None:
                answer = Answer(event["message_id"])
            if event["message_id"] != answer.message_id:
                continue
            data = event.get("data") or {}
            answer.events.append(data)
            inner = data.get("data") or {}
            if data.get("type") == "response:completion" and inner.get("type") == "response.output_text.delta":
                answer.deltas.append((at - sent, inner["delta"]))
            if data.get("type") == "chat:completion" and inner.get("sources"):
                answer.sources = inner["sources"]
            if data.get("type") == "chat:completion" and inner.get("done"):
                answer.done = inner
        return answer
