"""Fake provider servers used only by the tests (the demo keeps its own in llmlens.demo)."""
