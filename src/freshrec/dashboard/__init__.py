"""The live dashboard at ``/dashboard``: plain HTML, CSS and JS served by the server, fed by a live stream."""

from pathlib import Path

STATIC = Path(__file__).with_name("static")
