"""Sensors: what makes the platform react to the outside world."""
