"""Running the platform on one machine: instance settings, in-process ticks, the demo."""
