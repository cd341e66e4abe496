"""``gru-sim schema``: print the scenario file's JSON Schema."""

from __future__ import annotations

import argparse
import json


def cmd_schema(args: argparse.Namespace) -> int:
    from ..scenario import scenario_json_schema

    print(json.dumps(scenario_json_schema(), indent=2))
    return 0
