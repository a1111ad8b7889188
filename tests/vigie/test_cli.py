from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = [[], ["demo"], ["gateway"], ["gateway", "run"], ["cloud"], ["cloud", "run"],
            ["services"], ["services", "up"], ["decode"], ["replay"], ["users"],
            ["users", "add"], ["users", "list"], ["users", "disable"], ["users", "enable"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "vigie")
def test_every_command_has_help(args: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "vigie", *args, "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout and len(out.stdout.splitlines()) > 4


def test_gateway_with_a_bad_config_fails_with_one_clear_line(tmp_path: object) -> None:
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "gw.toml"
    cfg.write_text('[gateway]\nid = "bad id with spaces"\n')
    out = subprocess.run([sys.executable, "-m", "vigie", "gateway", "run", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "invalid gateway id" in out.stderr and "Traceback" not in out.stderr
