"""Automated accessibility checks with axe-core (bundled by `axe-playwright-python`), WCAG 2.2 A and AA rules.

`assert_accessible(page, name)` runs axe on the page as it is now and fails on any serious or critical violation,
naming each rule, its help text and the offending elements. The full axe answer is kept as
test-artifacts/browser/axe/<name>.json for the report.
"""

from __future__ import annotations

import json
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

from tests.browser.conftest import ARTIFACTS

#: WCAG 2.0, 2.1 and 2.2, levels A and AA, plus axe's best practices (landmarks, one <h1>, ...).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
#: The impacts that fail a test; minor and moderate ones are kept in the JSON report only.
BLOCKING = {"serious", "critical"}

_AXE = Axe()


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Every axe violation on the page as it is now (axe-core's result objects)."""
    results = await _AXE.run(page, options={"runOnly": {"type": "tag", "values": TAGS}, "resultTypes": ["violations"]})
    violations: list[dict[str, Any]] = results.response["violations"]
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per violation and up to three of its elements, for an assertion message."""
    lines = []
    for violation in violations:
        targets = [" ".join(map(str, node.get("target", []))) for node in violation.get("nodes", [])[:3]]
        lines.append(f"{violation['impact']}: {violation['id']} ({violation['help']}) at {targets}")
    return "\n".join(lines)


async def assert_accessible(page: Page, name: str) -> None:
    """axe finds no serious or critical violation on the page; the full result is saved as axe/<name>.json."""
    violations = await axe_violations(page)
    folder = ARTIFACTS / "axe"
    folder.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size or {"width": 0, "height": 0}
    report = folder / f"{name}-{viewport['width']}x{viewport['height']}.json"
    report.write_text(json.dumps({"url": page.url, "violations": violations}, indent=2))
    blocking = [v for v in violations if v.get("impact") in BLOCKING]
    assert not blocking, f"axe on the {name} page ({page.url}):\n{describe(blocking)}"
