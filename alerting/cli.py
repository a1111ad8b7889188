"""``vigie replay FILE [--rules RULES]``: replay a reading stream, print the alerts raised.

Each alert raised (opened, or upgraded to a higher severity) is printed on stdout as one JSON
object per line: patient, rule, severity, category (clinical, adherence, technical), time
(measurement time of the reading that raised it; the replay clock for silence alerts),
value, message, late, event. Bad lines are reported on stderr as ``line N: reason`` and
skipped.

Exit status: 0 when every line was good, 1 when some lines were bad (the others were
replayed), 2 when the input is unusable (missing or unreadable file, bad rules file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from alerting.replay import BadLine, Replay, read_lines
from alerting.settings import RulesConfig, SettingsError, load_config

EXIT_OK, EXIT_BAD_LINES, EXIT_UNUSABLE = 0, 1, 2


def _config(rules: Path | None, err: TextIO) -> RulesConfig | None:
    if rules is None:
        return RulesConfig()
    try:
        return load_config(rules)
    except SettingsError as exc:
        print(f"error: {exc}", file=err)
        return None


def replay_command(file: Path, rules: Path | None, *, out: TextIO | None = None,
                   err: TextIO | None = None) -> int:
    """Replay FILE through the rule engine; return the exit status (0, 1 or 2, see above)."""
    out, err = out or sys.stdout, err or sys.stderr
    config = _config(rules, err)
    if config is None:
        return EXIT_UNUSABLE
    try:
        replay = Replay(config)
    except SettingsError as exc:
        print(f"error: rules file {rules}: {exc}", file=err)
        return EXIT_UNUSABLE
    try:
        with file.open(encoding="utf-8") as lines:
            bad = _run(replay, lines, out, err)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {file}: {exc}", file=err)
        return EXIT_UNUSABLE
    return EXIT_BAD_LINES if bad else EXIT_OK


def _run(replay: Replay, lines: TextIO, out: TextIO, err: TextIO) -> int:
    bad = 0
    for item in read_lines(lines):
        if isinstance(item, BadLine):
            bad += 1
            print(f"line {item.number}: {item.reason}", file=err)
            continue
        for record in replay.feed(item):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return bad
