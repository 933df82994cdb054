#!/usr/bin/env python3
"""Writes N short prompt tasks (the dispatcher benchmark's input) to stdout."""
import json, sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    out.write(json.dumps({"id": f"t{i}", "prompt": f"Classify support ticket {i}: my order arrived late and the box was damaged.", "max_tokens": 16}) + "\n")
